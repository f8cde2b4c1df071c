"""Notifiers registered by config ``type``; :func:`build` turns the config table into them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alerts.notifiers.base import DeliveryError, Notifier
from alerts.notifiers.email import EmailNotifier
from alerts.notifiers.http import (
    AlertmanagerNotifier,
    PagerDutyNotifier,
    SlackNotifier,
    WebhookNotifier,
)

NOTIFIERS: dict[str, type[Notifier]] = {
    cls.type: cls
    for cls in (
        WebhookNotifier,
        SlackNotifier,
        PagerDutyNotifier,
        AlertmanagerNotifier,
        EmailNotifier,
    )
}


def register(cls: type[Notifier]) -> type[Notifier]:
    """Class decorator adding a custom notifier type."""
    NOTIFIERS[cls.type] = cls
    return cls


def build(configs: Mapping[str, Any]) -> dict[str, Notifier]:
    """One notifier per configured name."""
    return {name: NOTIFIERS[cfg.type](name, cfg) for name, cfg in configs.items()}


__all__ = ["NOTIFIERS", "DeliveryError", "Notifier", "build", "register"]
