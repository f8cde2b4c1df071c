"""Scoring paths: CPU flags, the path chosen per machine, the ONNX graph against TensorFlow."""

import os

import numpy as np
import pytest

from model.device import choose_path, cpu_flags, cpu_int8_dot, native_bf16

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu sse2 avx avx2 fma {extra}
bogomips\t: 4800.00

processor\t: 1
flags\t\t: fpu sse2 avx avx2 fma {extra}
"""


@pytest.mark.parametrize(
    ("extra", "cap", "expected"),
    [
        ("", None, None),  # AVX2 only (EPYC Zen 2/3, older Xeons)
        ("avx512f avx512_vnni", None, None),  # AVX-512 without BF16 (Cascade Lake, Ice Lake)
        ("avx512f avx512_bf16", None, "avx512_bf16"),  # Zen 4, Cooper Lake
        ("avx512f avx512_bf16 amx_bf16 amx_tile", None, "amx_bf16"),  # Sapphire Rapids
        ("avx512f avx512_bf16 amx_bf16", "AVX2", None),  # ONEDNN_MAX_CPU_ISA simulates AVX2
        ("avx512f avx512_bf16 amx_bf16", "avx512_core_bf16", "avx512_bf16"),
        ("avx512f avx512_bf16", "AVX512_CORE_VNNI", None),
        ("avx512f avx512_bf16", "ALL", "avx512_bf16"),
    ],
)
def test_native_bf16_from_cpuinfo_and_onednn_cap(extra, cap, expected):
    flags = cpu_flags(CPUINFO.format(extra=extra))
    assert "avx2" in flags and "bogomips" not in flags
    assert native_bf16(flags, cap) == expected
    assert cpu_int8_dot(flags) == ("vnni" in extra)
    assert cpu_flags("processor : 0\n") == frozenset()


def test_choose_path_per_machine():
    def plan(path="auto", precision="auto", *, gpu=False, bf16=None, vnni=False, onnx=True):
        p = choose_path(path, precision, gpu=gpu, bf16=bf16, vnni=vnni, onnx_available=onnx)
        return p.path, p.dtype_policy

    assert plan(bf16="amx_bf16", vnni=True) == ("tensorflow", "mixed_bfloat16")
    # AVX-512-BF16 without AMX: int8 ran 2.0x float32, TensorFlow bfloat16 1.42x
    assert plan(bf16="avx512_bf16", vnni=True) == ("onnx-int8", "float32")
    assert plan(bf16="avx512_bf16", vnni=True, onnx=False) == ("tensorflow", "mixed_bfloat16")
    assert plan(bf16="avx512_bf16", precision="bfloat16") == ("tensorflow", "mixed_bfloat16")
    assert plan(vnni=True) == ("onnx-int8", "float32")  # AVX-512-VNNI, or bf16 capped away
    assert plan(vnni=True, precision="float32") == ("tensorflow", "float32")
    assert plan(vnni=True, onnx=False) == ("tensorflow", "float32")
    assert plan() == ("tensorflow", "float32")  # plain AVX2: int8 kernels not measured
    assert plan(onnx=False) == ("tensorflow", "float32")
    assert plan(gpu=True) == ("tensorflow", "mixed_float16")
    assert plan(precision="float32", bf16="amx_bf16") == ("tensorflow", "float32")
    assert plan(precision="float32", bf16="avx512_bf16", vnni=True) == ("tensorflow", "float32")
    assert plan("onnx") == ("onnx", "float32")
    assert plan(precision="bfloat16") == ("tensorflow", "mixed_bfloat16")
    assert plan("tensorflow") == ("tensorflow", "float32")
    assert plan("onnx-int8", bf16="amx_bf16") == ("onnx-int8", "float32")
    assert plan("onnx", gpu=True) == ("tensorflow", "mixed_float16")
    chosen = choose_path("onnx", "auto", gpu=False, bf16=None, onnx_available=False)
    assert chosen.path == "tensorflow" and "onnxruntime not installed" in chosen.reason
    assert set(chosen.describe()) == {"path", "dtype_policy", "reason"}


def test_gpu_device_nodes_answer_without_tensorflow(tmp_path):
    from model.device import gpu_device_nodes

    assert not gpu_device_nodes(tmp_path)
    (tmp_path / "nvidiactl").touch()  # the control node alone is no GPU
    assert not gpu_device_nodes(tmp_path)
    for node in ("nvidia0", "kfd", "dxg"):
        (tmp_path / node).touch()
        assert gpu_device_nodes(tmp_path)
        (tmp_path / node).unlink()


TEXTS = [
    "shares fall",
    "the fed says rates rise today and the market is weak on loss news",
    "ipo",
    "oil energy report up 5% on strong growth, stock jump",
    "",
] * 3


@pytest.mark.parametrize("normalize", [False, True])
def test_onnx_graph_matches_tensorflow(tiny_registry, normalize):
    import onnx

    from model import onnx_export, ort
    from model.artifact import load_network
    from model.encoder import pad, tokenize
    from model.network import build_network, compile_forward
    from model.registry import Registry
    from tools.model.tiny import tiny_settings

    info = Registry.of(tiny_settings(tiny_registry)).resolve("champion")
    loaded, tokenizer, meta = load_network(info.path, dtype="float32")
    network = build_network(loaded.backbone, meta["labels"], dropout=0.0, normalize=normalize)
    rng = np.random.default_rng(3)
    network.set_head_weights(
        {
            k: rng.standard_normal(v.shape).astype(np.float32)
            for k, v in loaded.head_weights().items()
        }
    )
    ids, mask = pad(tokenize(tokenizer, TEXTS), 32)
    expected = compile_forward(network.model, softmax=True)(ids, mask)
    graph = onnx_export.export(network, meta["labels"], normalize=normalize)
    got = ort.forward(ort.session(graph))(ids, mask)
    int8 = ort.forward(ort.session(ort.quantize_int8(graph)))(ids, mask)
    # SmoothQuant scales move range between activations and weights, and outlier channels
    # multiplied apart are added back: the same function
    peaks = ort.activation_peaks(graph, [(ids, mask)])
    scales = ort.smoothing_scales(graph, peaks)
    assert "transformer_layer_1/feedforward_output_dense" in scales and "topic_head" not in scales
    outliers = ort.outlier_channels(peaks, k=8)
    dense = "transformer_layer_{}/feedforward_output_dense"
    assert set(outliers) == {dense.format(0), dense.format(1)}
    top = np.argsort(peaks[dense.format(1)])[-8:]
    np.testing.assert_array_equal(outliers[dense.format(1)], np.sort(top))
    decomposed = onnx_export.export(
        network, meta["labels"], normalize=normalize, smooth=scales, outliers=outliers
    )
    same = ort.forward(ort.session(decomposed))(ids, mask)
    quantized = onnx.load_from_string(ort.quantize_int8(decomposed))
    kinds = {n.name: n.op_type for n in quantized.graph.node}
    assert kinds[dense.format(1) + onnx_export.OUTLIER_SUFFIX] == "MatMul"  # kept float32
    assert kinds[dense.format(1) + "_quant"] == "MatMulInteger"  # the other channels: int8
    int8_decomposed = ort.forward(ort.session(quantized))(ids, mask)
    for task in meta["labels"]:
        np.testing.assert_allclose(got[task], expected[task], atol=1e-5)
        np.testing.assert_allclose(same[task], expected[task], atol=1e-5)
        np.testing.assert_allclose(int8[task], expected[task], atol=0.05)
        np.testing.assert_allclose(int8_decomposed[task], expected[task], atol=0.05)
        assert got[task].shape == (len(TEXTS), len(meta["labels"][task]))


def test_scorer_paths_give_the_same_results(tiny_registry):
    from model.scorer import Scorer
    from tools.model.tiny import tiny_settings

    settings = tiny_settings(tiny_registry)
    scorers = {
        path: Scorer.load(
            "champion", settings.model_copy(update={"scoring_path": path, "precision": "float32"})
        )
        for path in ("tensorflow", "onnx", "onnx-int8")
    }
    tf, onnx, int8 = (
        scorers[p].predict_proba(TEXTS[:4]) for p in ("tensorflow", "onnx", "onnx-int8")
    )
    for task in tf:
        np.testing.assert_allclose(onnx[task], tf[task], atol=1e-5)
        np.testing.assert_allclose(int8[task], tf[task], atol=0.05)  # calibrated, smoothed
    assert scorers["onnx"].scoring["path"] == "onnx"
    assert scorers["tensorflow"].scoring["dtype_policy"] == "float32"
    assert [p.topic for p in scorers["onnx"].predict(TEXTS[:4])] == [
        p.topic for p in scorers["tensorflow"].predict(TEXTS[:4])
    ]
    for s in scorers.values():
        s.close()


def test_onnx_graph_is_built_once_per_model_then_read_from_the_cache(
    tiny_registry, tmp_path, monkeypatch
):
    import shutil

    from model import ort
    from model.scorer import GRAPH_CACHE, Scorer
    from tools.model.tiny import tiny_settings

    registry = tmp_path / "registry"
    shutil.copytree(tiny_registry, registry, ignore=shutil.ignore_patterns(GRAPH_CACHE))
    settings = tiny_settings(registry).model_copy(
        update={"scoring_path": "onnx-int8", "precision": "float32"}
    )
    built = Scorer.load("champion", settings)
    cache = registry / GRAPH_CACHE
    (graph,) = cache.glob("onnx-int8-*.onnx")
    assert graph.stat().st_mode & 0o777 == 0o644  # readable by workers running as others

    def no_build(model_dir, path):
        raise AssertionError("built again although cached")

    monkeypatch.setattr(ort, "build_apart", no_build)
    cached = Scorer.load("champion", settings)
    for task, probs in built.predict_proba(TEXTS).items():
        np.testing.assert_array_equal(cached.predict_proba(TEXTS)[task], probs)

    # Anything the graph is made from changes its name: another path, another model file.
    model_dir = built.info.path
    assert ort.graph_file(model_dir, "onnx", cache) != graph
    (model_dir / "heads.npz").write_bytes((model_dir / "heads.npz").read_bytes() + b"\0")
    assert ort.graph_file(model_dir, "onnx-int8", cache) != graph
    for s in (built, cached):
        s.close()


def test_graph_cache_keeps_the_recent_ones_and_serves_when_it_cannot_write(tmp_path, caplog):
    from model import ort

    cache = tmp_path / "cache"
    files = [cache / f"g{i}.onnx" for i in range(ort.CACHE_KEEP + 2)]
    for i, f in enumerate(files):
        assert ort.cached_graph(f, lambda i=i: b"graph %d" % i) == f
        os.utime(f, (1000 + i, 1000 + i))  # distinct ages, oldest first
    assert sorted(cache.glob("*.onnx")) == sorted(files[-ort.CACHE_KEEP :])
    assert ort.cached_graph(files[-1], lambda: b"never built") == files[-1]

    # A cache that cannot be written (here its directory is a file, which fails for root
    # too, unlike a read-only mode): built each time, still served, no temporary left.
    blocked = tmp_path / "not-a-directory"
    blocked.write_bytes(b"")
    assert ort.cached_graph(blocked / "new.onnx", lambda: b"built") == b"built"
    assert "cannot cache the ONNX graph" in caplog.text


def test_an_onnx_scorer_never_imports_tensorflow(tiny_registry, tiny_scorer, tmp_path):
    """It builds its graph in a child process, then reads it from the cache: its own process
    stays at ONNX Runtime's size (about 0.25 GB for MiniLM int8, model/README)."""
    import shutil
    import subprocess
    import sys

    from model.scorer import GRAPH_CACHE
    from tools.model.tiny import tiny_settings

    registry = tmp_path / "registry"
    shutil.copytree(tiny_registry, registry, ignore=shutil.ignore_patterns(GRAPH_CACHE))
    settings = tiny_settings(registry).model_copy(update={"scoring_path": "onnx"})
    code = """import sys
from model.config import ModelSettings
from model.scorer import Scorer
scorer = Scorer.load("champion", ModelSettings.model_validate_json(sys.argv[1]))
topic = scorer.predict(["shares fall"])[0].topic
print("tensorflow" in sys.modules, "keras" in sys.modules, topic)
"""
    expected = tiny_scorer.predict(["shares fall"])[0].topic  # TensorFlow's, this process
    for _ in ("builds", "reads"):
        run = [sys.executable, "-c", code, settings.model_dump_json()]
        out = subprocess.run(run, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip().splitlines()[-1] == f"False False {expected}"
        assert len(list((registry / GRAPH_CACHE).glob("onnx-*.onnx"))) == 1


def test_models_prepare_builds_the_graph_that_the_first_score_reads(
    tiny_registry, tmp_path, monkeypatch
):
    import shutil

    from typer.testing import CliRunner

    from app.cli import app
    from model import ort
    from model.scorer import GRAPH_CACHE

    registry = tmp_path / "registry"
    shutil.copytree(tiny_registry, registry, ignore=shutil.ignore_patterns(GRAPH_CACHE))
    monkeypatch.setenv("FINPULSE_MODEL__REGISTRY_DIR", str(registry))
    monkeypatch.setenv("FINPULSE_MODEL__SHIPPED_MODEL", "false")
    monkeypatch.setenv("FINPULSE_MODEL__SCORING_PATH", "onnx-int8")
    prepared = CliRunner().invoke(app, ["models", "prepare"])
    assert prepared.exit_code == 0, prepared.output
    assert ": onnx-int8 (model.scoring_path), ready in " in prepared.output
    assert len(list((registry / GRAPH_CACHE).glob("onnx-int8-*.onnx"))) == 1

    def no_build(model_dir, path):
        raise AssertionError("built again although prepared")

    monkeypatch.setattr(ort, "build_apart", no_build)
    scored = CliRunner().invoke(app, ["score", "-"], input="shares fall\n")
    assert scored.exit_code == 0, scored.output
    assert '"topic"' in scored.output

    missing = CliRunner().invoke(app, ["models", "prepare", "no-such-version"])
    assert missing.exit_code == 2 and "no-such-version" in missing.output
