"""Notifiers registered by config ``type``; :func:`build` turns the config table into them.

Importing this package imports every module beside it, so the built-in notifiers are
registered without anyone naming them; one in another package registers when its module
is imported (list it in ``alerts.plugins``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from alerts.notifiers.base import NOTIFIERS, DeliveryError, Notifier, NotifierSettings
from alerts.registry import problems

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")


def parse_config(name: str, raw: Any) -> NotifierSettings:
    """The table ``[alerts.notifiers.<name>]`` checked by the schema of its ``type``."""
    if isinstance(raw, NotifierSettings):
        return raw
    if not isinstance(raw, Mapping) or "type" not in raw:
        raise ValueError(f"notifier {name!r} needs a type; known: {', '.join(sorted(NOTIFIERS))}")
    cls = NOTIFIERS.lookup(str(raw["type"]))
    try:
        return cls.Config.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"notifier {name!r} ({cls.type}): {problems(exc)}") from None


def build(configs: Mapping[str, NotifierSettings]) -> dict[str, Notifier]:
    """One notifier per configured name."""
    return {name: NOTIFIERS[cfg.type](name, cfg) for name, cfg in configs.items()}


__all__ = ["NOTIFIERS", "DeliveryError", "Notifier", "NotifierSettings", "build", "parse_config"]
