"""The JSON API behind the dashboard page, and the page itself.

Routes are plain ``def`` functions: the store and alert state are synchronous, so FastAPI
runs them in its thread pool. Every error leaves as ``{"error": message}``.
"""

from __future__ import annotations

import hmac
import logging
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException

from alerts.silences import Silence
from alerts.store import AlertRecord
from dashboard import schemas
from dashboard.bands import SHARE_DETECTORS, detector_bands
from dashboard.events import EventStream
from dashboard.metrics import ApiMetrics
from dashboard.services import Services
from finpulse import __version__
from finpulse.contracts import AlertState, Scope, ScoredArticle, Sentiment, utcnow
from stream.sinks import Filters, StoreUnavailable

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
MAX_WINDOWS = 500
RECENT_WINDOWS = 3
ERRORS = {code: {"model": schemas.ErrorBody} for code in (400, 401, 404, 422, 503)}


def create_app(services: Services, metrics: ApiMetrics | None = None) -> FastAPI:
    """The API over ``services``; the caller owns them (and closes them)."""
    app = FastAPI(
        title="finpulse",
        version=__version__,
        description="Scored financial news, negative-rate series, alerts and label feedback.",
        responses=ERRORS,
    )
    app.state.services = services
    app.state.events = EventStream(services)
    _errors(app)
    _auth(app, services)
    _measure(app, metrics or ApiMetrics(CollectorRegistry()))
    _routes(app, services)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    return app


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e["loc"] if p != "body") or "body"
            problems.append(f"{where}: {e['msg'].removeprefix('Value error, ')}")
        return _error(422, "; ".join(problems))

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, exc: ValueError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(StoreUnavailable)
    async def unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        return _error(503, f"store unavailable: {exc}")

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error ({type(exc).__name__}); see the server log")


def _auth(app: FastAPI, services: Services) -> None:
    """With a token configured, every /api call must present it as a Bearer token."""
    token = services.api.auth_token
    if token is None:
        return
    expected = f"Bearer {token.get_secret_value()}".encode()

    @app.middleware("http")
    async def bearer(request: Request, call_next):  # noqa: ANN001 - starlette hook
        if request.url.path.startswith("/api"):
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return _error(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
        return await call_next(request)


def _measure(app: FastAPI, metrics: ApiMetrics) -> None:
    @app.middleware("http")
    async def measure(request: Request, call_next):  # noqa: ANN001 - starlette hook
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        if path.startswith("/api") and path != "/api/events":
            metrics.requests.labels(request.method, path, str(response.status_code)).inc()
            metrics.latency.labels(path).observe(time.perf_counter() - start)
        return response


def _window(
    services: Services, step_s: int, windows: int, until: datetime | None
) -> tuple[datetime, datetime]:
    """The chart's range: ``windows`` steps up to ``until``, by default the newest article.

    Anchoring on the data, not the wall clock, keeps a replay of old (or simulated) news
    on screen.
    """
    if until is None:
        latest = services.store.latest(1)
        newest = latest[0].published_at if latest else utcnow()
        until = datetime.fromtimestamp(math.floor(newest.timestamp() / step_s + 1) * step_s, UTC)
    return until - timedelta(seconds=step_s * windows), until


def _series(
    services: Services, scope: Scope, key: str, since: datetime, until: datetime, step_s: int
) -> tuple[str | None, list[schemas.RatePointOut]]:
    rule = services.rule_for(scope, key)
    if rule is not None and (rule.window_s != step_s or rule.detector not in SHARE_DETECTORS):
        rule = None  # its baseline is not a share of these windows: nothing to draw
    points = services.store.rates(scope, key, since, until, step_s)
    bands = detector_bands(rule, points) if rule else None
    out = [
        schemas.RatePointOut.of(p, step_s, bands[i] if bands else None)
        for i, p in enumerate(points)
    ]
    return (rule.name if rule else None), out


def _alert_out(services: Services, record: AlertRecord) -> schemas.AlertOut:
    return schemas.AlertOut.of(record, services.alerts.silenced(record.alert, utcnow()) is not None)


def _routes(app: FastAPI, s: Services) -> None:
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

    @app.get("/api/articles", response_model=schemas.ArticlePage, tags=["articles"])
    def articles(
        q: Annotated[str, Query(max_length=500, description="full-text, all words")] = "",
        since: datetime | None = None,
        until: datetime | None = None,
        topic: Annotated[str | None, Query(max_length=200)] = None,
        sentiment: Sentiment | None = None,
        ticker: Annotated[str | None, Query(max_length=20)] = None,
        source: Annotated[str | None, Query(max_length=200)] = None,
        page: Annotated[int, Query(ge=1, le=10_000)] = 1,
        size: Annotated[int, Query(ge=1)] = 20,
    ) -> schemas.ArticlePage:
        """Search scored articles, newest first; filters combine with AND."""
        if size > s.api.page_size_max:
            raise ValueError(f"size must be at most {s.api.page_size_max}")
        filters = Filters(
            since=_aware(since, "since"),
            until=_aware(until, "until"),
            topic=topic or None,
            sentiment=sentiment,
            ticker=ticker or None,
            source=source or None,
        )
        result = s.store.search(q, filters, page, size)
        return schemas.ArticlePage(
            total=result.total, page=result.page, size=result.size, items=result.hits
        )

    @app.get("/api/articles/{article_id}", response_model=ScoredArticle, tags=["articles"])
    def article(article_id: str) -> ScoredArticle:
        found = s.store.get(article_id)
        if found is None:
            raise HTTPException(404, f"no article with id {article_id!r}")
        return found

    @app.get("/api/rates", response_model=schemas.RateSeries, tags=["rates"])
    def rates(
        scope: Scope = Scope.GLOBAL,
        key: Annotated[str, Query(max_length=200)] = "all",
        since: datetime | None = None,
        until: datetime | None = None,
        step_s: Annotated[int | None, Query(ge=1)] = None,
        windows: Annotated[int, Query(ge=1, le=MAX_WINDOWS)] = 60,
    ) -> schemas.RateSeries:
        """Negative share and volume per window, with the rule detector's baseline/threshold.

        ``step_s`` defaults to the window of the rule watching this key (else the stream's),
        so each bar is one window the detector judged.
        """
        key = "all" if scope == Scope.GLOBAL else key
        rule = s.rule_for(scope, key)
        step = step_s or (rule.window_s if rule else s.window_s)
        lo, hi = _window(s, step, windows, _aware(until, "until"))
        lo = _aware(since, "since") or lo
        name, points = _series(s, scope, key, lo, hi, step)
        return schemas.RateSeries(scope=scope, key=key, step_s=step, rule=name, points=points)

    @app.get("/api/rates/by-key", response_model=schemas.KeyRates, tags=["rates"])
    def rates_by_key(
        scope: Scope = Scope.TOPIC,
        windows: Annotated[int, Query(ge=1, le=MAX_WINDOWS)] = 30,
    ) -> schemas.KeyRates:
        """Every known key of a scope with its recent series: the small multiples."""
        if scope == Scope.GLOBAL:
            raise ValueError("by-key needs scope topic, ticker or source")
        step = s.window_s
        lo, hi = _window(s, step, windows, None)
        keys = []
        for key in s.facets()[f"{scope.value}s"]:
            points = s.store.rates(scope, key, lo, hi, step)
            total = sum(p.total for p in points)
            if not total:
                continue
            recent = points[-RECENT_WINDOWS:]
            rt, rn = sum(p.total for p in recent), sum(p.negative for p in recent)
            keys.append(
                schemas.KeySeries(
                    key=key,
                    total=total,
                    negative=sum(p.negative for p in points),
                    recent_share=rn / rt if rt else None,
                    points=[schemas.RatePointOut.of(p, step) for p in points],
                )
            )
        return schemas.KeyRates(scope=scope, step_s=step, keys=keys)

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
        return schemas.AlertList(items=[_alert_out(s, r) for r in records])

    @app.get("/api/alerts/{alert_id}", response_model=schemas.AlertOut, tags=["alerts"])
    def alert(alert_id: str) -> schemas.AlertOut:
        record = s.alerts.get_alert(alert_id)
        if record is None:
            raise HTTPException(404, f"no alert with id {alert_id!r}")
        return _alert_out(s, record)

    @app.post("/api/alerts/{alert_id}/ack", response_model=schemas.AlertOut, tags=["alerts"])
    def acknowledge(alert_id: str, body: schemas.AckIn) -> schemas.AlertOut:
        """Acknowledge: the alert stays firing but is not re-notified."""
        try:
            record = s.alerts.acknowledge(alert_id, body.by, body.comment)
        except KeyError:
            raise HTTPException(404, f"no alert with id {alert_id!r}") from None
        return _alert_out(s, record)

    @app.get("/api/silences", response_model=schemas.SilenceList, tags=["alerts"])
    def silences(active: bool = True) -> schemas.SilenceList:
        """Silences active now (default) or all of them, soonest ending first."""
        return schemas.SilenceList(items=s.alerts.list_silences(utcnow() if active else None))

    @app.post("/api/silences", response_model=Silence, status_code=201, tags=["alerts"])
    def add_silence(body: schemas.SilenceIn) -> Silence:
        """Mute notifications of matching alerts for a duration (or until ``ends_at``)."""
        return s.alerts.add_silence(body.to_silence())

    @app.delete("/api/silences/{silence_id}", status_code=204, tags=["alerts"])
    def delete_silence(silence_id: str) -> Response:
        if not s.alerts.delete_silence(silence_id):
            raise HTTPException(404, f"no silence with id {silence_id!r}")
        return Response(status_code=204)

    @app.post(
        "/api/feedback", response_model=schemas.FeedbackOut, status_code=201, tags=["feedback"]
    )
    def feedback(body: schemas.FeedbackIn) -> schemas.FeedbackOut:
        """Correct an article's topic or sentiment; ``finpulse retrain --feedback`` reads it."""
        found = s.store.get(body.article_id)
        if found is None:
            raise HTTPException(404, f"no article with id {body.article_id!r}")
        predicted = found.topic if body.task == "topic" else found.sentiment.value
        row = s.feedback.append(
            text=found.text,
            task=body.task,
            label=body.label,
            article_id=found.id,
            predicted=predicted,
            model_version=found.model_version,
            comment=body.comment,
        )
        return schemas.FeedbackOut(
            stored=True,
            task=row["task"],
            label=row["label"],
            predicted=predicted,
            feedback_rows=s.feedback.count(),
        )

    @app.get(
        "/api/events",
        tags=["live"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def events(request: Request) -> StreamingResponse:
        """Server-sent events: ``update`` whenever articles arrive or the firing set changes."""
        stream: EventStream = request.app.state.events

        async def body() -> AsyncIterator[str]:
            async for chunk in stream.follow():
                if await request.is_disconnected():
                    return
                yield chunk

        return StreamingResponse(
            body(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{name} must carry a timezone, e.g. 2026-01-02T03:04:05Z")
    return value
