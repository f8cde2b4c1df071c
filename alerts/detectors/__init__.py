"""Detectors registered by name, so a rule picks one (and its parameters) in the config file."""

from __future__ import annotations

import inspect
from typing import Any

from alerts.detectors.base import Decision, Detector, LateWindowError, epoch
from alerts.detectors.combined import ShareOrVolumeDetector
from alerts.detectors.count import NegBinomialCountDetector
from alerts.detectors.proportion import BetaBinomialDetector
from alerts.detectors.range import RangeDetector
from alerts.detectors.ratio import RatioDetector

DETECTORS: dict[str, type[Detector]] = {
    cls.name: cls
    for cls in (
        BetaBinomialDetector,
        NegBinomialCountDetector,
        ShareOrVolumeDetector,
        RangeDetector,
        RatioDetector,
    )
}


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator adding a custom detector to the registry."""
    DETECTORS[cls.name] = cls
    return cls


def parameters(name: str) -> set[str]:
    """Every parameter a detector accepts (its own and the shared gates)."""
    cls = DETECTORS[name]
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            sig = inspect.signature(klass.__init__)
            names |= {p for p, v in sig.parameters.items() if v.kind is v.KEYWORD_ONLY}
    return names


def create(name: str, **params: Any) -> Detector:
    """A detector by registry name, with unknown names and parameters named in the error."""
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(sorted(DETECTORS))}")
    unknown = set(params) - parameters(name)
    if unknown:
        raise ValueError(
            f"detector {name!r} has no parameter(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(parameters(name)))}"
        )
    return DETECTORS[name](**params)


__all__ = [
    "DETECTORS",
    "BetaBinomialDetector",
    "Decision",
    "Detector",
    "LateWindowError",
    "NegBinomialCountDetector",
    "RangeDetector",
    "RatioDetector",
    "ShareOrVolumeDetector",
    "create",
    "epoch",
    "parameters",
    "register",
]
