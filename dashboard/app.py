"""The JSON API behind the dashboard page, and the page itself.

Routes are plain ``def`` functions: the store and alert state are synchronous, so FastAPI
runs them in its thread pool. Every error leaves as ``{"error": message}``; every bound on
a parameter is declared in the OpenAPI document, so no valid request meets a 4xx and no
value, however extreme, reaches a 500.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from alerts.silences import Silence
from alerts.store import AlertRecord
from dashboard import guards, schemas
from dashboard.bands import SHARE_DETECTORS, detector_bands
from dashboard.events import EventStream
from dashboard.guards import error as _error
from dashboard.metrics import ApiMetrics
from dashboard.schemas import ApiTime, clamped
from dashboard.services import Services
from finpulse import __version__
from finpulse.contracts import MAX_ID_BYTES, AlertState, Scope, ScoredArticle, Sentiment, utcnow
from stream.sinks import Filters, StoreUnavailable

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
MAX_WINDOWS = 500
MAX_STEP_S = 31 * 86400
MAX_RESULTS = 10_000  # page * size; Elasticsearch's index.max_result_window
RECENT_WINDOWS = 3
ERRORS = {code: {"model": schemas.ErrorBody} for code in (400, 401, 404, 421, 422, 500, 503)}
RANGE = "``since`` must be before ``until`` when both are given. "
# An id path parameter: at most MAX_ID_BYTES bytes of UTF-8 (longer ones cannot exist).
Id = Annotated[str, PathParam(max_length=MAX_ID_BYTES)]


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
    _measure(app, metrics or ApiMetrics(CollectorRegistry()))
    guards.install(app, services.api)
    _routes(app, services)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    return app


def _errors(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return _error(exc.status_code, str(exc.detail), headers or None)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _problems(exc.errors()))

    @app.exception_handler(ValidationError)
    async def invalid_value(request: Request, exc: ValidationError) -> JSONResponse:
        return _error(400, _problems(exc.errors()))

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, exc: ValueError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(StoreUnavailable)
    async def unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        return _error(503, f"store unavailable: {exc}")

    _elasticsearch_errors(app)


def _elasticsearch_errors(app: FastAPI) -> None:
    """Elasticsearch unreachable, overloaded or failing on a read is 503 (retry later), as
    StoreUnavailable is; only a request Elasticsearch refuses as malformed stays a 500."""
    try:
        from elastic_transport import ApiError, TransportError
    except ImportError:  # no [stream] extra: no Elasticsearch store either
        return

    @app.exception_handler(TransportError)
    async def unreachable(request: Request, exc: TransportError) -> JSONResponse:
        return _error(503, f"store unavailable: {exc}")

    @app.exception_handler(ApiError)
    async def refused(request: Request, exc: ApiError) -> JSONResponse:
        if exc.meta.status == 429 or exc.meta.status >= 500:
            return _error(503, f"store unavailable: {exc}")
        log.error("elasticsearch refused a request on %s: %s", request.url.path, exc)
        return _error(500, f"internal error ({type(exc).__name__}); see the server log")


def _problems(errors: Sequence[Any]) -> str:
    """Pydantic errors as one line: ``field: message; ...``."""
    problems = []
    for e in errors:
        where = ".".join(str(p) for p in e["loc"] if p != "body") or "body"
        problems.append(f"{where}: {e['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


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


def _ordered(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since >= until:
        raise ValueError(f"since ({since.isoformat()}) must be before until ({until.isoformat()})")


def _range(
    services: Services,
    step_s: int,
    windows: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[datetime, datetime]:
    """The chart's range: from ``since`` (else ``windows`` steps) up to ``until``, by default
    the end of the newest article's window; at most MAX_WINDOWS windows, the newest ones.

    Anchoring on the data, not the wall clock, keeps a replay of old (or simulated) news
    on screen. The result may be empty (``lo >= hi``), e.g. for a ``since`` after the data.
    """
    _ordered(since, until)
    if until is None:
        latest = services.store.latest(1)
        newest = clamped(latest[0].published_at if latest else utcnow())
        hi = datetime.fromtimestamp(math.floor(newest.timestamp() / step_s + 1) * step_s, UTC)
    else:
        hi = clamped(until)
    lo = clamped(since) if since is not None else hi - timedelta(seconds=step_s * windows)
    return max(lo, hi - timedelta(seconds=step_s * MAX_WINDOWS), schemas.EARLIEST), hi


def _series(
    services: Services, scope: Scope, key: str, since: datetime, until: datetime, step_s: int
) -> tuple[str | None, list[schemas.RatePointOut]]:
    rule = services.rule_for(scope, key)
    if rule is not None and (rule.window_s != step_s or rule.detector not in SHARE_DETECTORS):
        rule = None  # its baseline is not a share of these windows: nothing to draw
    points = services.store.rates(scope, key, since, until, step_s) if since < until else []
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

    size_max = s.api.page_size_max

    @app.get(
        "/api/articles",
        response_model=schemas.ArticlePage,
        tags=["articles"],
        description="Search scored articles, newest first; filters combine with AND. "
        + RANGE
        + f"At most {MAX_RESULTS} results are reachable (page * size).",
    )
    def articles(
        q: Annotated[str, Query(max_length=500, description="full-text, all words")] = "",
        since: Annotated[ApiTime | None, Query(description="published at or after")] = None,
        until: Annotated[ApiTime | None, Query(description="published before")] = None,
        topic: Annotated[str | None, Query(max_length=200)] = None,
        sentiment: Sentiment | None = None,
        ticker: Annotated[str | None, Query(max_length=20)] = None,
        source: Annotated[str | None, Query(max_length=200)] = None,
        page: int = Query(1, ge=1, le=max(1, MAX_RESULTS // size_max)),
        size: int = Query(min(20, size_max), ge=1, le=size_max),
    ) -> schemas.ArticlePage:
        _ordered(since, until)
        lo, hi = (clamped(since) if since else None), (clamped(until) if until else None)
        if lo is not None and hi is not None and lo >= hi:  # both beyond the stored range
            return schemas.ArticlePage(total=0, page=page, size=size, items=[])
        filters = Filters(
            since=lo,
            until=hi,
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
    def article(article_id: Id) -> ScoredArticle:
        found = s.store.get(article_id) if _fits(article_id) else None
        if found is None:
            raise HTTPException(404, f"no article with id {article_id!r}")
        return found

    @app.get(
        "/api/rates",
        response_model=schemas.RateSeries,
        tags=["rates"],
        description="Negative share and volume per window, with the rule detector's "
        "baseline/threshold. ``step_s`` defaults to the window of the rule watching this key "
        "(else the stream's), so each bar is one window the detector judged. "
        + RANGE
        + f"A range of more than {MAX_WINDOWS} windows keeps the newest {MAX_WINDOWS}; "
        "times are clamped to 1970-9000.",
    )
    def rates(
        scope: Scope = Scope.GLOBAL,
        key: Annotated[str, Query(max_length=200)] = "all",
        since: ApiTime | None = None,
        until: Annotated[
            ApiTime | None, Query(description="default: the end of the newest article's window")
        ] = None,
        step_s: Annotated[int | None, Query(ge=1, le=MAX_STEP_S)] = None,
        windows: Annotated[int, Query(ge=1, le=MAX_WINDOWS)] = 60,
    ) -> schemas.RateSeries:
        key = "all" if scope == Scope.GLOBAL else key
        rule = s.rule_for(scope, key)
        step = step_s or (rule.window_s if rule else s.window_s)
        lo, hi = _range(s, step, windows, since, until)
        name, points = _series(s, scope, key, lo, hi, step)
        return schemas.RateSeries(scope=scope, key=key, step_s=step, rule=name, points=points)

    @app.get("/api/rates/by-key", response_model=schemas.KeyRates, tags=["rates"])
    def rates_by_key(
        scope: Literal["topic", "ticker", "source"] = "topic",
        windows: Annotated[int, Query(ge=1, le=MAX_WINDOWS)] = 30,
    ) -> schemas.KeyRates:
        """Every known key of a scope with its recent series: the small multiples."""
        step = s.window_s
        lo, hi = _range(s, step, windows)
        keys = []
        for key in s.facets()[f"{scope}s"]:
            points = s.store.rates(Scope(scope), key, lo, hi, step)
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
        return schemas.KeyRates(scope=Scope(scope), step_s=step, keys=keys)

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

    @app.post(
        "/api/feedback", response_model=schemas.FeedbackOut, status_code=201, tags=["feedback"]
    )
    def feedback(body: schemas.FeedbackIn) -> schemas.FeedbackOut:
        """Correct an article's topic or sentiment; ``finpulse retrain --feedback`` reads it."""
        found = s.store.get(body.article_id) if _fits(body.article_id) else None
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


def _fits(identifier: str) -> bool:
    """Whether an id could be stored at all (a longer one is simply not found)."""
    return len(identifier.encode()) <= MAX_ID_BYTES
