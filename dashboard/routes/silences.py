"""``/api/silences``: list, add and delete silences (mute notifications by matcher)."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Response

from alerts.silences import Silence
from dashboard import schemas
from dashboard.routes.common import Id
from dashboard.services import Services
from finpulse.contracts import utcnow


def add_routes(app: FastAPI, s: Services) -> None:
    """Silence listing, creation and deletion."""

    @app.get("/api/silences", response_model=schemas.SilenceList, tags=["alerts"])
    def silences(active: bool = True) -> schemas.SilenceList:
        """Silences active now (default) or all of them, soonest ending first."""
        return schemas.SilenceList(items=s.alerts.list_silences(utcnow() if active else None))

    @app.post("/api/silences", response_model=Silence, status_code=201, tags=["alerts"])
    def add_silence(body: schemas.SilenceIn) -> Silence:
        """Mute notifications of matching alerts for a duration or until ``ends_at``, which
        must be after the start (``starts_at``, default now). Regex matchers use RE2 syntax;
        backreferences and lookaround are refused."""
        return s.alerts.add_silence(body.to_silence())

    @app.delete("/api/silences/{silence_id}", status_code=204, tags=["alerts"])
    def delete_silence(silence_id: Id) -> Response:
        if not s.alerts.delete_silence(silence_id):
            raise HTTPException(404, f"no silence with id {silence_id!r}")
        return Response(status_code=204)
