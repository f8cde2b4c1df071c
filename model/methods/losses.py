"""The training loss: class weights, the loss against per-class target mass, and the prior
correction that takes the class weights back off the heads' biases."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from model.labels import TASKS
from model.methods.base import Context


def class_weights(labels: list[str], names: list[str], power: float) -> np.ndarray:
    """(n / count) ** power per class, mean 1 over the classes present; unseen classes get 1."""
    counts = np.array([labels.count(n) for n in names], dtype=np.float64)
    weights = np.ones(len(names))
    seen = counts > 0
    weights[seen] = (counts[seen].sum() / counts[seen]) ** power
    weights[seen] /= weights[seen].mean()
    return weights.astype(np.float32)


def task_class_weights(ctx: Context) -> dict[str, np.ndarray]:
    """Class weights per task, from the rows actually trained on."""
    power = ctx.settings.train.class_weight_power
    return {t: class_weights(ctx.fit[t].labels, ctx.labels[t], power) for t in TASKS}


def remove_prior(bias: np.ndarray, weights: np.ndarray, ctx: Context) -> np.ndarray:
    """The head bias less ``prior_correction`` x log(class weight).

    Class-weighted cross-entropy makes the heads estimate p(c|x) * w_c up to a constant;
    subtracting log w_c (post-hoc logit adjustment) restores p(c|x), which is what accuracy
    and the alert rates want, while training still got the weights' push on rare classes.
    """
    return bias - ctx.settings.train.prior_correction * np.log(weights)


class TaskLoss(keras.losses.Loss):
    """Label-smoothed, class-weighted cross-entropy against per-class target mass.

    ``y_true`` rows are one-hot for a gold label, a teacher's probabilities times
    ``teacher_weight`` for a distilled one, and zero for a text with neither (it adds 0).
    Summed over the batch's rows and divided by the whole batch size, so each task pulls in
    proportion to its share of the batch. Plain ``keras.ops``: any backend.
    """

    def __init__(self, class_weights: np.ndarray, smoothing: float, name: str | None = None):
        super().__init__(name=name, reduction="sum_over_batch_size")
        self.class_weights = np.asarray(class_weights, dtype=np.float32)
        self.smoothing = smoothing

    def call(self, y_true: Any, y_pred: Any) -> Any:
        ops = keras.ops
        n = len(self.class_weights)
        y = ops.cast(y_true, "float32")
        mass = ops.sum(y, axis=-1)
        dist = y / ops.expand_dims(ops.maximum(mass, 1e-9), -1)
        target = dist * (1.0 - self.smoothing) + self.smoothing / n
        log_p = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        ce = -ops.sum(target * log_p, axis=-1)
        w = ops.sum(dist * ops.convert_to_tensor(self.class_weights), axis=-1)
        return ce * w * mass
