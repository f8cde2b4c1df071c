"""The fine-tuning optimizer: AdamW with per-variable rates, on a warm-up + linear decay."""

from __future__ import annotations

from typing import Any

import keras


class LayerwiseAdamW(keras.optimizers.AdamW):
    """AdamW whose step for each variable is scaled by a multiplier (by variable path).

    One optimizer with per-variable rates (layer-wise decay, a faster head) is what lets
    Keras' own trainer, hence any backend, run the fine-tuning.
    """

    def __init__(self, multipliers: dict[str, float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.multipliers = multipliers
        self._scales: list[float] = []

    def build(self, variables: list) -> None:
        super().build(variables)
        self._scales = [self.multipliers.get(v.path, 1.0) for v in variables]

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> Any:
        # Backends hand over their native variable here; Adam finds its slots by index too.
        scale = self._scales[self._get_variable_index(variable)]
        return super().update_step(gradient, variable, learning_rate * scale)


class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate: linear warm-up to ``peak``, then linear decay to zero."""

    def __init__(self, peak: float, warmup: int, total: int) -> None:
        self.peak, self.warmup, self.total = peak, warmup, total

    def __call__(self, step: Any) -> Any:
        step = keras.ops.cast(step, "float32")
        up = self.peak * (step + 1.0) / max(self.warmup, 1)
        remaining = (self.total - step) / max(self.total - self.warmup, 1)
        return keras.ops.where(
            step < self.warmup, up, self.peak * keras.ops.maximum(0.0, remaining)
        )

    def get_config(self) -> dict:
        return {"peak": self.peak, "warmup": self.warmup, "total": self.total}
