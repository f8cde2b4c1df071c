"""Training: prepare the data, run one method of :mod:`model.methods`, evaluate, register.

The methods (``full``, ``lora``, ``head``, ``zero-shot``, ``few-shot``) are in
:mod:`model.methods`; this module builds the network and the splits they train on, scores
the validation files and writes the new registry version. The dev set for early stopping
is a fixed, hash-chosen slice of the train files; the validation files are only used for
the report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model import lora
from model.artifact import finalize, save_weights
from model.config import ModelSettings
from model.data import (
    Labeled,
    content_sha256,
    holdout_mask,
    load_feedback,
    load_split,
    split_source,
)
from model.device import dtype_policy, training_policy
from model.encoder import (
    load_backbone,
    load_tokenizer,
    replace_urls,
    resolve_base,
    run_batched,
    tokenize,
)
from model.labels import LABELS, TASKS
from model.methods import METHODS, Context, Method, Outcome
from model.metrics import headline, task_metrics
from model.network import build_network, compile_forward
from model.registry import ModelInfo, Registry

__all__ = ["METHODS", "TrainData", "load_train_data", "method_labels", "train_model"]


@dataclass
class TrainData:
    train: dict[str, Labeled]
    valid: dict[str, Labeled]
    # Provenance, saved in model.json (``data``): files and sha256 from load_train_data;
    # ``generated: True`` marks made-up rows (tests, never a champion).
    source: dict[str, Any] = field(default_factory=lambda: {"name": "in-memory rows"})


def load_train_data(
    settings: ModelSettings, data_dir: Path, feedback: Path | None = None
) -> TrainData:
    """The configured train/valid files, with feedback rows (if any) added to train."""
    files = settings.data_files
    train = load_split(data_dir, files, "train")
    source = {
        "name": "files",
        "generated": False,
        "train": split_source(data_dir, files, "train"),
        "valid": split_source(data_dir, files, "valid"),
    }
    if feedback is not None:
        for task, rows in load_feedback(feedback).items():
            train[task] = train[task] + rows
        source["feedback"] = {"file": str(feedback), "sha256": content_sha256(Path(feedback))}
    return TrainData(train, load_split(data_dir, files, "valid"), source)


def method_labels(name: str, settings: ModelSettings) -> dict[str, list[str]]:
    """The label sets a model of this method predicts (zero-shot: the described labels)."""
    if name == "zero-shot":
        return {t: list(settings.zero_shot.descriptions[t]) for t in TASKS}
    if name == "few-shot":
        return {t: list(settings.zero_shot.examples.get(t) or LABELS[t]) for t in TASKS}
    return {t: list(LABELS[t]) for t in TASKS}


def _fit_dev_split(
    train: dict[str, Labeled], fraction: float
) -> tuple[dict[str, Labeled], dict[str, Labeled]]:
    """The rows trained on and the hash-chosen dev rows that early stopping watches."""
    fit, dev = {}, {}
    for t in TASKS:
        held = holdout_mask(train[t].texts, fraction, salt="dev")
        if held.all() or not held.any():  # too little data to split: use it for both
            fit[t], dev[t] = train[t], train[t]
        else:
            fit[t], dev[t] = train[t].subset(~held), train[t].subset(held)
    return fit, dev


def _context(
    method_name: str,
    spec: Method,
    settings: ModelSettings,
    data: TrainData,
    epochs: int | None,
    progress: bool,
) -> tuple[Context, Path, str]:
    """The base encoder with fresh heads and the splits: what a method trains, its base
    directory and its dtype policy."""
    tr = settings.train
    base = resolve_base(settings.base_model)
    tokenizer = load_tokenizer(base, settings.max_length)
    if tr.replace_urls:
        replace_urls(tokenizer)
    # Methods that only run the encoder embed at the scorer's precision.
    dtype = (
        training_policy(tr.precision) if spec.trains_encoder else dtype_policy(settings.precision)
    )
    backbone = load_backbone(base, dropout=tr.dropout, dtype=dtype)
    backbone.trainable = spec.trains_encoder
    labels = method_labels(method_name, settings)
    network = build_network(backbone, labels, dropout=tr.dropout, normalize=spec.normalize)
    fit, dev = _fit_dev_split(data.train, tr.dev_fraction)
    ctx = Context(
        settings, network, tokenizer, labels, fit, dev, data.valid, epochs or tr.epochs, progress
    )
    return ctx, base, dtype


def _valid_probs(ctx: Context) -> dict[str, np.ndarray]:
    """The trained network's probabilities on the validation texts."""
    forward = compile_forward(ctx.network.model, softmax=True)
    return {
        t: run_batched(
            forward,
            tokenize(ctx.tokenizer, ctx.valid[t].texts),
            batch_size=ctx.settings.batch_size,
            max_length=ctx.settings.max_length,
            progress=ctx.bar(f"evaluating {t}"),
        )[t]
        for t in TASKS
    }


def _meta(
    method_name: str,
    spec: Method,
    ctx: Context,
    outcome: Outcome,
    base: Path,
    dtype: str,
    source: dict[str, Any],
) -> dict[str, Any]:
    """``model.json``'s training record, less the timing."""
    adapter = method_name == "lora"
    return {
        "method": method_name,
        "base_model": str(base),
        **({"base": lora.base_identity(base), "lora": outcome.notes["lora"]} if adapter else {}),
        "data": source,
        "labels": ctx.labels,
        "max_length": ctx.settings.max_length,
        "normalize": spec.normalize,
        "train_settings": ctx.settings.train.model_dump(),
        "train_dtype": dtype,
        "epochs": ctx.epochs,
        "train_rows": {t: len(ctx.fit[t]) for t in TASKS},
        "dev_rows": {t: len(ctx.dev[t]) for t in TASKS},
        "valid_rows": {t: len(ctx.valid[t]) for t in TASKS},
        "history": outcome.history,
        "notes": outcome.notes,
    }


def train_model(
    method_name: str,
    settings: ModelSettings,
    data: TrainData,
    *,
    epochs: int | None = None,
    progress: bool = True,
    extra_meta: dict[str, Any] | None = None,
) -> ModelInfo:
    """Train with one method, evaluate on ``data.valid`` and write a new registry version."""
    if method_name not in METHODS:
        raise ValueError(f"unknown method {method_name!r}; expected one of {', '.join(METHODS)}")
    spec = METHODS[method_name]
    started = time.time()
    ctx, base, dtype = _context(method_name, spec, settings, data, epochs, progress)
    outcome = spec.fit(ctx)
    train_seconds = time.time() - started
    probs = outcome.valid_probs if outcome.valid_probs is not None else _valid_probs(ctx)
    valid = {t: task_metrics(data.valid[t].labels, probs[t], ctx.labels[t]) for t in TASKS}

    from model.report import write_report

    path = Registry(settings.registry_dir).new_version_dir(method_name)
    save_weights(path, ctx.network, ctx.tokenizer, adapter=method_name == "lora")
    meta = {
        **_meta(method_name, spec, ctx, outcome, base, dtype, data.source),
        "train_seconds": round(train_seconds, 1),
        **(extra_meta or {}),
    }
    metrics = {"valid": valid, "headline": headline(valid), "train_seconds": meta["train_seconds"]}
    write_report(path, meta, metrics)
    return finalize(path, meta, metrics)
