"""Scoring paths: CPU flags, the path chosen per machine, the ONNX graph against TensorFlow."""

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
    assert plan(bf16="avx512_bf16", vnni=True) == ("tensorflow", "mixed_bfloat16")
    assert plan(vnni=True) == ("onnx-int8", "float32")  # AVX-512-VNNI, or bf16 capped away
    assert plan(vnni=True, precision="float32") == ("tensorflow", "float32")
    assert plan(vnni=True, onnx=False) == ("tensorflow", "float32")
    assert plan() == ("tensorflow", "float32")  # plain AVX2: int8 kernels not measured
    assert plan(onnx=False) == ("tensorflow", "float32")
    assert plan(gpu=True) == ("tensorflow", "mixed_float16")
    assert plan(precision="float32", bf16="amx_bf16") == ("tensorflow", "float32")
    assert plan("onnx") == ("onnx", "float32")
    assert plan(precision="bfloat16") == ("tensorflow", "mixed_bfloat16")
    assert plan("tensorflow") == ("tensorflow", "float32")
    assert plan("onnx-int8", bf16="amx_bf16") == ("onnx-int8", "float32")
    assert plan("onnx", gpu=True) == ("tensorflow", "mixed_float16")
    chosen = choose_path("onnx", "auto", gpu=False, bf16=None, onnx_available=False)
    assert chosen.path == "tensorflow" and "onnxruntime not installed" in chosen.reason
    assert set(chosen.describe()) == {"path", "dtype_policy", "reason"}


TEXTS = [
    "shares fall",
    "the fed says rates rise today and the market is weak on loss news",
    "ipo",
    "oil energy report up 5% on strong growth, stock jump",
    "",
] * 3


@pytest.mark.parametrize("normalize", [False, True])
def test_onnx_graph_matches_tensorflow(tiny_registry, normalize):
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
    # SmoothQuant scales move range between activations and weights: the same function
    scales = ort.smoothing_scales(graph, [(ids, mask)])
    assert "transformer_layer_1/feedforward_output_dense" in scales and "topic_head" not in scales
    smoothed = onnx_export.export(network, meta["labels"], normalize=normalize, smooth=scales)
    same = ort.forward(ort.session(smoothed))(ids, mask)
    for task in meta["labels"]:
        np.testing.assert_allclose(got[task], expected[task], atol=1e-5)
        np.testing.assert_allclose(same[task], expected[task], atol=1e-5)
        np.testing.assert_allclose(int8[task], expected[task], atol=0.05)
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
