"""An HF ONNX export of a BERT turns back into the same HF-format base encoder."""

import json

import numpy as np
import onnx
import pytest
from safetensors.numpy import load_file
from typer.testing import CliRunner

from model.encoder import BaseModelError, load_backbone
from model.onnx_import import import_onnx
from tools.model.tiny import make_tiny_base


def _export_like_hf(weights: dict[str, np.ndarray], path, *, orphan: bool = False) -> None:
    """Initializers and nodes as torch.onnx names them: each linear weight transposed,
    anonymous, feeding a MatMul whose output its named bias is added to."""
    from onnx import helper, numpy_helper

    inits, nodes = [], []
    for i, (name, value) in enumerate(sorted(weights.items())):
        linear = name.endswith(".weight") and value.ndim == 2 and "embeddings" not in name
        if not linear:
            inits.append(numpy_helper.from_array(value, name))
            continue
        anonymous = f"onnx::MatMul_{1000 + i}"
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value.T), anonymous))
        nodes.append(helper.make_node("MatMul", [f"h_{i}", anonymous], [f"mm_{i}"], f"mm{i}"))
        bias = "unrelated" if orphan else name.removesuffix(".weight") + ".bias"
        nodes.append(helper.make_node("Add", [bias, f"mm_{i}"], [f"out_{i}"], f"add{i}"))
    graph = helper.make_graph(nodes, "bert", [], [], initializer=inits)
    onnx.save(helper.make_model(graph), str(path))


def test_import_restores_the_hf_weights_and_the_encoder(tmp_path):
    base = make_tiny_base(tmp_path / "base", seed=5)
    weights = load_file(str(base / "model.safetensors"))
    without_pooler = {k: v for k, v in weights.items() if not k.startswith("pooler.")}
    _export_like_hf(without_pooler, tmp_path / "model.onnx")

    from app.cli import app

    result = CliRunner().invoke(
        app,
        [
            *("models", "import-onnx", str(tmp_path / "model.onnx"), "--heads", "2"),
            *("--tokenizer", str(base / "tokenizer.json"), "--out", str(tmp_path / "imported")),
        ],
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / "imported"
    restored = load_file(str(out / "model.safetensors"))
    for name, value in without_pooler.items():
        np.testing.assert_array_equal(restored[name], value, err_msg=name)
    config = json.loads((out / "config.json").read_text())
    tiny = json.loads((base / "config.json").read_text())
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
        assert config[key] == tiny[key], key

    ids = np.array([[2, 7, 9, 11, 3, 0]], np.int32)
    inputs = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": ids != 0}
    expected = load_backbone(base)(inputs)["sequence_output"]
    got = load_backbone(out)(inputs)["sequence_output"]
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=1e-6)


def test_a_weight_without_a_named_bias_is_refused(tmp_path):
    base = make_tiny_base(tmp_path / "base")
    weights = load_file(str(base / "model.safetensors"))
    _export_like_hf(weights, tmp_path / "model.onnx", orphan=True)
    with pytest.raises(BaseModelError, match="cannot name the weight of MatMul"):
        import_onnx(tmp_path / "model.onnx", base / "tokenizer.json", tmp_path / "out", heads=2)


def test_an_export_missing_layer_parameters_is_refused(tmp_path):
    base = make_tiny_base(tmp_path / "base")
    weights = load_file(str(base / "model.safetensors"))
    del weights["encoder.layer.1.output.LayerNorm.bias"]
    _export_like_hf(weights, tmp_path / "model.onnx")
    with pytest.raises(BaseModelError, match=r"lacks 1 parameters, e.g. encoder.layer.1.output"):
        import_onnx(tmp_path / "model.onnx", base / "tokenizer.json", tmp_path / "out", heads=2)


def test_a_file_that_is_not_onnx_is_refused(tmp_path):
    base = make_tiny_base(tmp_path / "base")
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(BaseModelError, match="is not an ONNX model"):
        import_onnx(tmp_path / "junk.onnx", base / "tokenizer.json", tmp_path / "out", heads=2)
