"""``full`` and ``lora``: fine-tune the encoder and heads, early-stopped on the dev score.

Both run one loop: length-bucketed batches through Keras' ``train_on_batch`` (any backend),
AdamW with warm-up + linear decay (:mod:`model.methods.optim`), the class-weighted
:class:`~model.methods.losses.TaskLoss` against gold or teacher targets
(:mod:`model.methods.distill`), the best dev epoch kept, then the prior correction.
``full`` trains everything with layer-wise rate decay; ``lora`` only adapters, biases,
LayerNorms and heads at one rate.
"""

from __future__ import annotations

import logging
import math
import re
import time
from typing import Any

import numpy as np

from model import lora
from model.encoder import length_batches, pad, run_batched, tokenize
from model.labels import TASKS
from model.methods.base import Context, Outcome, dev_metrics, history_row, jit, method
from model.methods.distill import targets
from model.methods.losses import TaskLoss, remove_prior, task_class_weights
from model.methods.optim import LayerwiseAdamW, WarmupLinearDecay
from model.network import compile_forward

log = logging.getLogger(__name__)


def _layer_of(path: str) -> int:
    """Encoder depth of a variable: 0 = embeddings, 1..L = transformer layers."""
    match = re.search(r"transformer_layer_(\d+)", path)
    return int(match.group(1)) + 1 if match else 0


@method("full", trains_encoder=True)
def fit_full(ctx: Context) -> Outcome:
    tr, network = ctx.settings.train, ctx.network
    # BERT's pooler is unused by mean pooling; the word embeddings are frozen by choice.
    for layer in network.backbone.layers:
        if layer.name == "pooled_dense" or (
            tr.freeze_word_embeddings and layer.name == "token_embedding"
        ):
            layer.trainable = False
    # Layer-wise learning-rate decay: each encoder depth below the top at layer_decay x.
    num_layers = getattr(network.backbone, "num_layers", 0)
    backbone_ids = {id(v) for v in network.backbone.weights}
    multipliers = {
        v.path: (
            tr.layer_decay ** (num_layers - _layer_of(v.path))
            if id(v) in backbone_ids
            else tr.head_learning_rate / tr.learning_rate
        )
        for v in network.model.trainable_variables
    }
    return fine_tune(ctx, tr.learning_rate, multipliers, {})


@method("lora", trains_encoder=True)
def fit_lora(ctx: Context) -> Outcome:
    """Adapters (plus biases, LayerNorms and heads) at one rate; the base kernels stay."""
    tr = ctx.settings.train
    adapted = lora.enable(ctx.network.backbone, tr.lora_rank, tr.lora_alpha)
    if not adapted:
        raise ValueError("the base encoder has no layers LoRA knows how to adapt")
    trainable = sum(int(np.prod(v.shape)) for v in ctx.network.model.trainable_variables)
    notes = {"lora": {"rank": tr.lora_rank, "alpha": tr.lora_alpha, "layers": adapted}}
    notes["trainable_parameters"] = trainable
    return fine_tune(ctx, tr.lora_learning_rate, {}, notes)


def fine_tune(
    ctx: Context, peak: float, multipliers: dict[str, float], notes: dict[str, Any]
) -> Outcome:
    """Train the network's trainable variables (AdamW, warm-up + linear decay, each
    variable's step scaled by its multiplier), early-stopped on the dev score."""
    tr, network = ctx.settings.train, ctx.network
    texts = [x for task in TASKS for x in ctx.fit[task].texts]
    y, teacher = targets(ctx)
    tokens = tokenize(ctx.tokenizer, texts)
    steps = math.ceil(len(texts) / tr.batch_size)
    if tr.max_steps_per_epoch:
        steps = min(steps, tr.max_steps_per_epoch)
    weights = task_class_weights(ctx)
    _compile(ctx, peak, multipliers, steps * ctx.epochs, weights)
    history = _epochs(ctx, tokens, y, steps, notes)
    heads = network.head_weights()
    for t in TASKS:
        heads[f"{t}_bias"] = remove_prior(heads[f"{t}_bias"], weights[t], ctx)
    network.set_head_weights(heads)
    best_epoch = max(history, key=lambda r: r["dev_score"])["epoch"]
    notes |= {"best_epoch": best_epoch, "steps_per_epoch": steps, "teacher": teacher}
    return Outcome(history=history, notes=notes)


def _compile(
    ctx: Context,
    peak: float,
    multipliers: dict[str, float],
    total: int,
    weights: dict[str, np.ndarray],
) -> None:
    """The model's optimizer (``total`` steps, warm-up first) and per-task losses."""
    tr = ctx.settings.train
    optimizer = LayerwiseAdamW(
        multipliers,
        learning_rate=WarmupLinearDecay(peak, int(tr.warmup_ratio * total), total),
        weight_decay=tr.weight_decay,
        clipnorm=1.0,
    )
    ctx.network.model.compile(
        optimizer=optimizer,
        loss={t: TaskLoss(weights[t], tr.label_smoothing, name=f"{t}_loss") for t in TASKS},
        loss_weights={t: tr.task_weights.get(t, 1.0) for t in TASKS},
        jit_compile=jit(),
    )


def _epochs(
    ctx: Context,
    tokens: list[np.ndarray],
    y: dict[str, np.ndarray],
    steps: int,
    notes: dict[str, Any],
) -> list[dict]:
    """Epochs until the dev score stops improving (``patience``) or time is up
    (``max_train_minutes``, noted as ``stopped_at``); the model ends at its best epoch."""
    tr, model = ctx.settings.train, ctx.network.model
    forward = compile_forward(model, softmax=True)
    dev_tokens = {t: tokenize(ctx.tokenizer, ctx.dev[t].texts) for t in TASKS}
    lengths = np.array([len(x) for x in tokens])
    rng = np.random.default_rng(tr.seed)
    history, best, best_weights, stale = [], -1.0, None, 0
    started = time.time()
    deadline = started + 60 * tr.max_train_minutes if tr.max_train_minutes else None
    for epoch in range(1, ctx.epochs + 1):
        batches = length_batches(lengths, tr.batch_size, rng)
        if jit():  # one compiled shape: a short last batch would cost a second compile
            batches = [b for b in batches if len(b) == tr.batch_size] or batches
        losses = _train_epoch(ctx, epoch, batches[:steps], tokens, y, deadline, notes)
        loss = float(np.mean(losses)) if losses else float("nan")
        row = history_row(
            epoch, loss, dev_metrics(_dev_probs(ctx, forward, dev_tokens), ctx), started
        )
        history.append(row)
        log.info("epoch %d: %s", epoch, row)
        if ctx.progress:
            print(f"epoch {epoch}: " + ", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        if row["dev_score"] > best:
            best, best_weights, stale = row["dev_score"], model.get_weights(), 0
        else:
            stale += 1
            if stale >= tr.patience:
                break
        if "stopped_at" in notes:  # out of time: the best state so far is the model
            break
    model.set_weights(best_weights)
    return history


def _train_epoch(
    ctx: Context,
    epoch: int,
    batches: list[np.ndarray],
    tokens: list[np.ndarray],
    y: dict[str, np.ndarray],
    deadline: float | None,
    notes: dict[str, Any],
) -> list[float]:
    """One pass over ``batches`` (indices into ``tokens`` and ``y``): the batches' losses."""
    if ctx.progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc=f"epoch {epoch}/{ctx.epochs}", unit="step", mininterval=5)
    losses = []
    for idx in batches:
        if deadline is not None and time.time() > deadline:
            notes["stopped_at"] = {"epoch": epoch, "step": len(losses)}
            break
        ids, mask = pad([tokens[i] for i in idx], ctx.settings.max_length, full=jit())
        logs = ctx.network.model.train_on_batch(
            {"token_ids": ids, "padding_mask": mask},
            {t: y[t][idx] for t in TASKS},
            return_dict=True,
        )
        losses.append(float(logs["loss"]))
        if ctx.progress and len(losses) % 20 == 0:
            batches.set_postfix(loss=f"{np.mean(losses[-100:]):.4f}")
    return losses


def _dev_probs(
    ctx: Context, forward: Any, dev_tokens: dict[str, list[np.ndarray]]
) -> dict[str, np.ndarray]:
    settings = ctx.settings
    return {
        t: run_batched(
            forward, dev_tokens[t], batch_size=settings.batch_size, max_length=settings.max_length
        )[t]
        for t in TASKS
    }
