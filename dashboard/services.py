"""What the API reads and writes, opened from the settings: one object the routes share.

The embedded runner and the dashboard run in one process in the demo, so the runner's
store and alert state can be handed in instead of opened twice.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from alerts.config import RuleConfig
from alerts.store import AlertStore
from dashboard.config import ApiSettings
from dashboard.feedback import FeedbackLog
from finpulse.contracts import Scope
from model.config import ModelSettings
from model.data import describe
from model.device import scoring_plan
from model.labels import SENTIMENTS, TOPICS
from model.registry import Registry
from stream.sinks import Store, open_store

if TYPE_CHECKING:
    from app.settings import Settings

FACETS_TTL_S = 5.0
FACETS_SAMPLE = 500  # the store's largest page


@dataclass
class Services:
    store: Store
    alerts: AlertStore
    rules: list[RuleConfig]
    registry: Registry
    model: ModelSettings
    feedback: FeedbackLog
    api: ApiSettings
    window_s: int = 300
    watchlist: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    _facets: tuple[float, dict[str, list[str]]] | None = None
    _scoring: dict[str, str] | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        api: ApiSettings,
        *,
        store: Store | None = None,
        alerts: AlertStore | None = None,
    ) -> Services:
        return cls(
            store=store or open_store(settings),
            alerts=alerts or AlertStore(settings.alerts.state_db),
            rules=list(settings.alerts.rules),
            registry=Registry.of(settings.model),
            model=settings.model,
            feedback=FeedbackLog(api.feedback_path),
            api=api,
            window_s=settings.stream.window_s,
            watchlist=sorted(t.upper() for t in settings.ingest.watchlist),
            sources=sorted(s.name for s in settings.ingest.sources),
        )

    def close(self) -> None:
        self.store.close()
        self.alerts.close()

    def rule_for(self, scope: Scope, key: str) -> RuleConfig | None:
        """The first rule that watches this key (the one whose detector the chart draws)."""
        return next((rule for rule in self.rules if rule.watches(scope, key)), None)

    def facets(self) -> dict[str, list[str]]:
        """Keys to drill into: the model's topics, the watchlist, configured and seen sources."""
        now = time.monotonic()
        if self._facets and now - self._facets[0] < FACETS_TTL_S:
            return self._facets[1]
        recent = self.store.latest(FACETS_SAMPLE)
        facets = {
            "topics": sorted(set(TOPICS) | {a.topic for a in recent}),
            "tickers": sorted(set(self.watchlist) | {t for a in recent for t in a.tickers}),
            "sources": sorted(set(self.sources) | {a.source for a in recent}),
            "sentiments": list(SENTIMENTS),
        }
        self._facets = (now, facets)
        return facets

    def scoring(self) -> dict[str, str]:
        """The scoring path these model settings pick on this machine (no model loaded, no
        TensorFlow import without a GPU). A worker on another machine may pick another: it
        logs its own and exports it on ``finpulse_model_info``."""
        if self._scoring is None:
            plan = scoring_plan(self.model.scoring_path, self.model.precision)
            self._scoring = {**plan.describe(), "host": socket.gethostname()}
        return self._scoring

    def model_info(self) -> dict[str, Any]:
        info = self.registry.champion()
        versions = [i.version for i in self.registry.list()]
        if info is None:
            return {
                "version": None,
                "versions": versions,
                "topics": TOPICS,
                "sentiments": SENTIMENTS,
                "scoring": self.scoring(),
            }
        return {
            "scoring": self.scoring(),
            "version": info.version,
            "method": info.method,
            "created_at": info.created_at.isoformat(),
            "metrics": info.metrics,
            "metrics_data": describe(info.meta.get("data")),
            "generated_data": info.generated_data,
            "origin": info.origin,
            "versions": versions,
            "topics": info.meta.get("labels", {}).get("topic", TOPICS),
            "sentiments": info.meta.get("labels", {}).get("sentiment", SENTIMENTS),
        }
