"""Champion/challenger retraining: promote a new model only if it is not worse.

Both models are scored on the same fixed held-back split: a hash-chosen share of the
validation files that no training ever sees (feedback rows with those texts are dropped
from training). Every decision is appended to the registry's ``decisions.jsonl``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from model.config import ModelSettings
from model.data import Labeled, holdout_mask
from model.metrics import combined_score, headline
from model.registry import ModelInfo, Registry
from model.train import TrainData, load_train_data, train_model

log = logging.getLogger(__name__)


def holdout_split(valid: dict[str, Labeled], fraction: float) -> dict[str, Labeled]:
    return {t: d.subset(holdout_mask(d.texts, fraction, salt="holdout")) for t, d in valid.items()}


def decide(challenger: float, champion: float | None, tolerance: float) -> tuple[bool, str]:
    """Whether to promote, and why.

    >>> decide(0.80, 0.81, 0.0)
    (False, 'challenger 0.8000 < champion 0.8100 - tolerance 0.0000')
    >>> decide(0.80, None, 0.0)[0]
    True
    """
    if champion is None:
        return True, "no comparable champion"
    if challenger >= champion - tolerance:
        return (
            True,
            f"challenger {challenger:.4f} >= champion {champion:.4f} - tolerance {tolerance:.4f}",
        )
    return (
        False,
        f"challenger {challenger:.4f} < champion {champion:.4f} - tolerance {tolerance:.4f}",
    )


def _score(info: ModelInfo, settings: ModelSettings, holdout: dict[str, Labeled]) -> dict:
    from model.scorer import Scorer

    scorer = Scorer(info, settings)
    return {t: scorer.evaluate(d) for t, d in holdout.items()}


def retrain(
    settings: ModelSettings,
    data_dir: Path,
    *,
    feedback: Path | None = None,
    method: str | None = None,
    epochs: int | None = None,
    progress: bool = True,
    data: TrainData | None = None,
) -> dict[str, Any]:
    """Train a challenger, compare it with the champion, promote or not; return the decision."""
    rs = settings.retrain
    data = data or load_train_data(settings, data_dir, feedback)
    holdout = holdout_split(data.valid, rs.holdout_fraction)
    held_texts = {x for d in holdout.values() for x in d.texts}
    train = {
        t: d.subset(np.array([x not in held_texts for x in d.texts])) for t, d in data.train.items()
    }
    challenger = train_model(
        method or rs.method,
        settings,
        TrainData(train, data.valid, data.source),
        epochs=epochs,
        progress=progress,
        extra_meta={"retrain": True, "feedback": str(feedback) if feedback else None},
    )
    registry = Registry.of(settings)
    champion = registry.champion()
    challenger_metrics = _score(challenger, settings, holdout)
    champion_metrics = None
    if champion is not None:
        try:
            champion_metrics = _score(champion, settings, holdout)
        except ValueError as exc:  # a champion of another taxonomy cannot be compared
            log.warning("champion %s not comparable: %s", champion.version, exc)
    challenger_score = combined_score(challenger_metrics)
    champion_score = combined_score(champion_metrics) if champion_metrics else None
    promote, reason = decide(challenger_score, champion_score, rs.tolerance)
    if promote:
        registry.promote(challenger.version)
    decision = {
        "at": datetime.now(UTC).isoformat(),
        "challenger": challenger.version,
        "champion": champion.version if champion else None,
        "promoted": promote,
        "reason": reason,
        "metric": "mean macro-F1 over tasks on the held-back split",
        "challenger_score": round(challenger_score, 4),
        "champion_score": None if champion_score is None else round(champion_score, 4),
        "challenger_metrics": headline(challenger_metrics),
        "champion_metrics": headline(champion_metrics) if champion_metrics else None,
        "holdout_rows": {t: len(d) for t, d in holdout.items()},
        "feedback": str(feedback) if feedback else None,
    }
    registry.record_decision(decision)
    return decision
