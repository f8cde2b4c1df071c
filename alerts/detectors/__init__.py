"""Detectors registered by name, so a rule picks one (and its parameters) in the config file.

Importing this package imports every module beside it, so the built-in detectors are
registered without anyone naming them; a detector in another package registers when its
module is imported (list it in ``alerts.plugins``).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import cache
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, create_model

from alerts.detectors.base import DETECTORS, Decision, Detector, LateWindowError, epoch

# The built-ins first, in the order reports list them; then any other module here.
_FIRST = ("proportion", "count", "combined", "range", "ratio")
for _module in (*_FIRST, *sorted(m.name for m in pkgutil.iter_modules(__path__))):
    importlib.import_module(f"{__name__}.{_module}")

from alerts.detectors.combined import ShareOrVolumeDetector  # noqa: E402
from alerts.detectors.count import NegBinomialCountDetector  # noqa: E402
from alerts.detectors.proportion import BetaBinomialDetector  # noqa: E402
from alerts.detectors.range import RangeDetector  # noqa: E402
from alerts.detectors.ratio import RatioDetector  # noqa: E402


@cache
def params_schema(cls: type[Detector]) -> type[BaseModel]:
    """The ``params`` a rule may give ``cls``, as a pydantic model: the keyword-only
    parameters of its ``__init__`` and its bases', with their annotations and defaults, so
    a detector's signature is its one config schema. Strict: a value of the wrong type is
    refused at config load rather than coerced (the detector gets the value as written)."""
    fields: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = vars(klass).get("__init__")
        if init is None or klass is object:
            continue
        hints = get_type_hints(init)
        for p in inspect.signature(init).parameters.values():
            if p.kind is p.KEYWORD_ONLY:
                default = ... if p.default is p.empty else p.default
                fields[p.name] = (hints.get(p.name, Any), default)
    config = ConfigDict(extra="forbid", strict=True)
    return create_model(f"{cls.__name__}Params", __config__=config, **fields)


def parameters(name: str) -> set[str]:
    """Every parameter a detector accepts (its own and the shared gates)."""
    return set(params_schema(DETECTORS.lookup(name)).model_fields)


def create(name: str, **params: Any) -> Detector:
    """A detector by registry name, with unknown names and parameters named in the error."""
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
    "params_schema",
]
