"""``head``: the two linear heads trained on the frozen encoder's pooled vectors.

Every text is embedded once (a progress bar), then each head is a softmax regression
trained by Adam with class weights; the epoch with the best dev macro-F1 is kept.
"""

from __future__ import annotations

import time

import keras
import numpy as np

from model.labels import TASKS
from model.methods.base import (
    Context,
    Outcome,
    embed_all,
    history_row,
    jit,
    method,
    one_hot,
    softmax,
)
from model.methods.losses import TaskLoss, remove_prior, task_class_weights
from model.metrics import task_metrics


def _fit_linear(
    x: np.ndarray,
    y: np.ndarray,
    x_dev: np.ndarray,
    dev_labels: list[str],
    names: list[str],
    ctx: Context,
    weights: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, list[tuple[float, dict]]]:
    """Softmax regression by Adam on fixed vectors; keeps the epoch with the best dev F1."""
    tr = ctx.settings.train
    rng = np.random.default_rng(tr.seed)
    init = keras.initializers.RandomNormal(stddev=0.01, seed=tr.seed)
    probe = keras.Sequential(
        [keras.Input((x.shape[1],)), keras.layers.Dense(len(names), kernel_initializer=init)]
    )
    probe.compile(
        optimizer=keras.optimizers.Adam(learning_rate=tr.probe_learning_rate),
        loss=TaskLoss(weights, tr.label_smoothing),
        jit_compile=jit(),
    )
    curve, best, best_wb = [], -1.0, None
    for _ in range(tr.head_epochs):
        order = rng.permutation(len(x))
        # Equal-sized batches (the remainder is dropped): one compiled shape on any backend.
        size = min(128, len(x))
        losses = [
            float(probe.train_on_batch(x[b], y[b], return_dict=True)["loss"])
            for b in order[: len(x) // size * size].reshape(-1, size)
        ]
        kernel, bias = probe.layers[-1].get_weights()
        probs = softmax(x_dev @ kernel + bias)
        m = task_metrics(dev_labels, probs, names)
        curve.append((float(np.mean(losses)), m))
        if m["macro_f1"] > best:
            best, best_wb = m["macro_f1"], (kernel, bias)
    return best_wb[0], best_wb[1], curve


@method("head")
def fit_head(ctx: Context) -> Outcome:
    tr = ctx.settings.train
    groups = {}
    for t in TASKS:
        groups[f"fit/{t}"], groups[f"dev/{t}"] = ctx.fit[t].texts, ctx.dev[t].texts
        groups[f"valid/{t}"] = ctx.valid[t].texts
    started = time.time()
    vec = embed_all(ctx, groups)
    embed_seconds = time.time() - started
    heads, curves, valid_probs = {}, {}, {}
    task_weights = task_class_weights(ctx)
    for t in TASKS:
        names = ctx.labels[t]
        kernel, bias, curves[t] = _fit_linear(
            vec[f"fit/{t}"],
            one_hot(ctx.fit[t], names),
            vec[f"dev/{t}"],
            ctx.dev[t].labels,
            names,
            ctx,
            task_weights[t],
        )
        bias = remove_prior(bias, task_weights[t], ctx)
        heads[f"{t}_kernel"], heads[f"{t}_bias"] = kernel, bias
        valid_probs[t] = softmax(vec[f"valid/{t}"] @ kernel + bias)
    ctx.network.set_head_weights(heads)
    history = [
        history_row(
            e + 1,
            sum(curves[t][e][0] for t in TASKS),
            {t: curves[t][e][1] for t in TASKS},
            started,
        )
        for e in range(tr.head_epochs)
    ]
    return Outcome(history, valid_probs, {"embed_seconds": round(embed_seconds, 1)})
