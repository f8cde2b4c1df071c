"""A tiny, randomly initialised HF-format BERT and a model trained on it in seconds.

For tests anywhere in the project that need a real model (stream, API, demo) without the
time a real one takes: the network, files and code paths are the real ones, only small.

>>> import tempfile
>>> from pathlib import Path
>>> base = make_tiny_base(Path(tempfile.mkdtemp()) / "tiny")
>>> sorted(p.name for p in base.iterdir())
['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'vocab.txt']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from model.labels import SENTIMENTS, TOPICS

if TYPE_CHECKING:
    from model.config import ModelSettings
    from model.registry import ModelInfo

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Words that carry the toy labels, plus enough letters and pieces to spell anything.
_WORDS = sorted(
    {w.lower() for name in TOPICS for w in name.replace("|", " ").replace("&", " ").split()}
    | {"shares", "stock", "rise", "fall", "jump", "plunge", "beat", "miss", "flat", "steady"}
    | {"growth", "loss", "profit", "up", "down", "strong", "weak", "the", "a", "of", "to"}
    | {"and", "in", "on", "for", "is", "news", "today", "says", "report", "market"}
)
_CHARS = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789.,:;!?$%&'-/()@#")
VOCAB = SPECIAL + _WORDS + _CHARS + ["##" + c for c in _CHARS]


def make_tiny_base(path: Path, seed: int = 0) -> Path:
    """Write a 2-layer, 32-wide BERT with a ~130-token vocabulary to ``path`` (HF format)."""
    from safetensors.numpy import save_file
    from tokenizers.implementations import BertWordPieceTokenizer

    from model.encoder import BERT_LAYER_DENSE, BERT_LAYER_NORMS, bert_config

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    BertWordPieceTokenizer(str(path / "vocab.txt"), lowercase=True).save(
        str(path / "tokenizer.json")
    )
    (path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    config = bert_config(
        vocab=len(VOCAB), hidden=32, layers=2, heads=2, intermediate=64, positions=128
    )
    (path / "config.json").write_text(json.dumps(config, indent=2))

    rng = np.random.default_rng(seed)
    h, inter = config["hidden_size"], config["intermediate_size"]

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    w = {
        "embeddings.word_embeddings.weight": normal(len(VOCAB), h),
        "embeddings.position_embeddings.weight": normal(config["max_position_embeddings"], h),
        "embeddings.token_type_embeddings.weight": normal(2, h),
        "embeddings.LayerNorm.weight": np.ones(h, np.float32),
        "embeddings.LayerNorm.bias": np.zeros(h, np.float32),
        "pooler.dense.weight": normal(h, h),
        "pooler.dense.bias": np.zeros(h, np.float32),
    }
    shapes = {"intermediate.dense": (inter, h), "output.dense": (h, inter)}  # others: h x h
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for name in BERT_LAYER_DENSE:
            out_dim, in_dim = shapes.get(name, (h, h))
            w[f"{p}{name}.weight"] = normal(out_dim, in_dim)
            w[f"{p}{name}.bias"] = np.zeros(out_dim, np.float32)
        for ln in BERT_LAYER_NORMS:
            w[f"{p}{ln}.weight"] = np.ones(h, np.float32)
            w[f"{p}{ln}.bias"] = np.zeros(h, np.float32)
    save_file(w, str(path / "model.safetensors"))
    return path


def toy_rows(n_per_label: int = 6, seed: int = 0) -> list[dict]:
    """Feedback-shaped rows ``{text, task, label}`` whose label words appear in the text."""
    rng = np.random.default_rng(seed)
    fillers = ["the", "market", "today", "news", "says", "report", "stock"]
    cues = {"negative": "shares fall loss weak", "neutral": "flat steady", "positive": "rise beat"}
    rows = []
    for task, names in (("topic", TOPICS), ("sentiment", SENTIMENTS)):
        for name in names:
            cue = cues.get(name, name.lower().replace("|", " "))
            for _ in range(n_per_label):
                words = [*rng.choice(fillers, size=3), *cue.split()]
                rng.shuffle(words)
                rows.append({"text": " ".join(words), "task": task, "label": name})
    return rows


def train_tiny_model(
    registry_root: Path,
    rows: list[dict] | None = None,
    *,
    method: str = "head",
    promote: bool = True,
) -> ModelInfo:
    """Train a tiny model on ``rows`` (default :func:`toy_rows`), register it, promote it.

    Takes a few seconds on a CPU. Tests then load it with
    ``Scorer.load("champion", tiny_settings(registry_root))``.
    """
    from model.data import Labeled
    from model.registry import Registry
    from model.train import TrainData, train_model

    rows = rows if rows is not None else toy_rows()
    settings = tiny_settings(registry_root)
    by_task = {
        task: Labeled(
            task,
            [r["text"] for r in rows if r["task"] == task],
            [r["label"] for r in rows if r["task"] == task],
        )
        for task in ("topic", "sentiment")
    }
    # Made-up rows: recorded as generated, and promoted only because tests ask explicitly.
    source = {"name": "toy rows (tools/model/tiny.py)", "generated": True}
    info = train_model(method, settings, TrainData(by_task, by_task, source), progress=False)
    if not promote:
        return info
    return Registry.of(settings).promote(info.version, allow_generated=True)


def tiny_settings(registry_root: Path) -> ModelSettings:
    """Settings for tiny models: a tiny base beside the registry and a few quick steps."""
    from model.config import ModelSettings, TrainSettings

    base = Path(registry_root) / ".tiny-base"
    if not (base / "model.safetensors").is_file():
        make_tiny_base(base)
    return ModelSettings(
        registry_dir=Path(registry_root),
        shipped_model=False,  # tests see only their own models
        base_model=str(base),
        max_length=32,
        batch_size=16,
        # TensorFlow on every CPU: auto would pick int8 where VNNI exists, and the tests compare
        # scores to 1e-4. The ONNX paths have their own tests, which name the path.
        scoring_path="tensorflow",
        train=TrainSettings(epochs=1, batch_size=8, max_steps_per_epoch=4, head_epochs=3),
    )
