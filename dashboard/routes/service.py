"""``/api/health``, ``/api/model`` and ``/api/facets``: what the service is and knows."""

from __future__ import annotations

from typing import Literal

from fastapi import FastAPI, Response

from dashboard import schemas
from dashboard.services import Services
from finpulse import __version__
from finpulse.contracts import AlertState


def add_routes(app: FastAPI, s: Services) -> None:
    """Health, the champion model and the drill-down facets."""

    @app.get("/api/health", response_model=schemas.Health, tags=["service"])
    def health(response: Response) -> schemas.Health:
        """Liveness of the store and alert state; 503 when either cannot be read."""
        status: Literal["ok", "degraded"] = "ok"
        try:
            store = {"backend": s.store.name, "ok": True, "articles": s.store.count()}
        except Exception as exc:  # any failure is what health must report, not raise
            store, status = {"backend": s.store.name, "ok": False, "error": str(exc)}, "degraded"
        try:
            firing = len(s.alerts.list_alerts(AlertState.FIRING, limit=10_000))
            alerts = {"ok": True, "firing": firing}
        except Exception as exc:
            alerts, status = {"ok": False, "error": str(exc)}, "degraded"
        if status != "ok":
            response.status_code = 503
        return schemas.Health(
            status=status,
            version=__version__,
            store=store,
            alerts=alerts,
            model={"version": s.registry.champion_version()},
        )

    @app.get("/api/model", response_model=schemas.ModelOut, tags=["service"])
    def model() -> schemas.ModelOut:
        """The champion model (what scores new articles), its metrics and all versions."""
        return schemas.ModelOut(**s.model_info())

    @app.get("/api/facets", response_model=schemas.Facets, tags=["articles"])
    def facets() -> schemas.Facets:
        """Topics, tickers and sources to drill into (labels, watchlist and what was seen)."""
        return schemas.Facets(**s.facets())
