"""A trained model on disk: encoder (keras-hub preset), heads, tokenizer and metadata.

``model.json`` is written last, so the registry never lists a half-written model.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from model import lora
from model.encoder import load_backbone, load_tokenizer
from model.network import Network, build_network
from model.registry import METRICS_FILE, MODEL_FILE, ModelInfo

FORMAT = 1
ENCODER_DIR = "encoder"
HEADS_FILE = "heads.npz"
ADAPTER_FILE = "adapter.safetensors"
TOKENIZER_FILE = "tokenizer.json"


def save_weights(path: Path, network: Network, tokenizer: Tokenizer, *, adapter: bool) -> None:
    """The encoder as a keras-hub preset, or (``adapter``) only its LoRA adapter weights."""
    if adapter:
        from safetensors.numpy import save_file

        save_file(lora.adapter_weights(network.backbone), str(path / ADAPTER_FILE))
    else:
        network.backbone.save_to_preset(str(path / ENCODER_DIR))
    np.savez(path / HEADS_FILE, **network.head_weights())
    (path / TOKENIZER_FILE).write_text(tokenizer.to_str())


def finalize(path: Path, meta: dict[str, Any], metrics: dict[str, Any]) -> ModelInfo:
    """Write metrics, then model.json: from here on the model is complete."""
    (path / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    meta = {
        "format": FORMAT,
        "version": path.name,
        "created_at": datetime.now(UTC).isoformat(),
        **meta,
    }
    (path / MODEL_FILE).write_text(json.dumps(meta, indent=2, default=str))
    return ModelInfo.read(path)


def load_network(path: Path, *, dtype: str | None = None) -> tuple[Network, Tokenizer, dict]:
    # keras-hub imports tensorflow-text for its own tokenizers (117 MiB resident); finpulse
    # tokenises with ``tokenizers``, so a process that has not imported it yet never does.
    sys.modules.setdefault("tensorflow_text", None)
    meta = json.loads((path / MODEL_FILE).read_text())
    if meta.get("format", 0) > FORMAT:
        raise ValueError(f"{path} was written by a newer finpulse (format {meta['format']})")
    if (path / ADAPTER_FILE).is_file():
        from safetensors.numpy import load_file

        backbone = load_backbone(lora.find_base(meta["base"]), dtype=dtype)
        scale = meta["lora"]["alpha"] / meta["lora"]["rank"]
        lora.assign(backbone, load_file(path / ADAPTER_FILE), merge_scale=scale)
    else:
        backbone = load_backbone(path / ENCODER_DIR, dtype=dtype)
    network = build_network(backbone, meta["labels"], dropout=0.0, normalize=meta["normalize"])
    with np.load(path / HEADS_FILE) as heads:
        network.set_head_weights(dict(heads))
    return network, load_tokenizer(path, meta["max_length"]), meta
