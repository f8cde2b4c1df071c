"""``/api/alerts``: firing alerts or the history, one alert, and acknowledging one."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import FastAPI, HTTPException, Query

from alerts.store import AlertRecord
from dashboard import schemas
from dashboard.routes.common import Id
from dashboard.services import Services
from finpulse.contracts import AlertState, utcnow


def add_routes(app: FastAPI, s: Services) -> None:
    """Alert listing, lookup and acknowledgement."""

    @app.get("/api/alerts", response_model=schemas.AlertList, tags=["alerts"])
    def alerts(
        state: Literal["firing", "resolved", "all"] = "firing",
        rule: Annotated[str | None, Query(max_length=200)] = None,
        key: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> schemas.AlertList:
        """Firing alerts (default) or the history, newest first, with ack and silence state."""
        wanted = None if state == "all" else AlertState(state)
        records = s.alerts.list_alerts(wanted, rule=rule, key=key, limit=limit)
        return schemas.AlertList(items=[_alert_out(s, rec) for rec in records])

    @app.get("/api/alerts/{alert_id}", response_model=schemas.AlertOut, tags=["alerts"])
    def alert(alert_id: Id) -> schemas.AlertOut:
        record = s.alerts.get_alert(alert_id)
        if record is None:
            raise HTTPException(404, f"no alert with id {alert_id!r}")
        return _alert_out(s, record)

    @app.post("/api/alerts/{alert_id}/ack", response_model=schemas.AlertOut, tags=["alerts"])
    def acknowledge(alert_id: Id, body: schemas.AckIn) -> schemas.AlertOut:
        """Acknowledge: the alert stays firing but is not re-notified."""
        try:
            record = s.alerts.acknowledge(alert_id, body.by, body.comment)
        except KeyError:
            raise HTTPException(404, f"no alert with id {alert_id!r}") from None
        return _alert_out(s, record)


def _alert_out(services: Services, record: AlertRecord) -> schemas.AlertOut:
    return schemas.AlertOut.of(record, services.alerts.silenced(record.alert, utcnow()) is not None)
