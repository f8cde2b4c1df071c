"""``/api/rates``: negative share and volume per window, with the detector's band; and
``/api/rates/by-key``: every key of a scope at once (the page's small multiples)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import FastAPI, Query

from dashboard import schemas
from dashboard.bands import SHARE_DETECTORS, detector_bands
from dashboard.routes.common import RANGE, ordered
from dashboard.schemas import ApiTime, clamped
from dashboard.services import Services
from finpulse.contracts import Scope, utcnow

MAX_WINDOWS = 500
MAX_STEP_S = 31 * 86400
RECENT_WINDOWS = 3
RATES = (
    "Negative share and volume per window, with the rule detector's "
    "baseline/threshold. ``step_s`` defaults to the window of the rule watching this key "
    "(else the stream's), so each bar is one window the detector judged. "
    + RANGE
    + f"A range of more than {MAX_WINDOWS} windows keeps the newest {MAX_WINDOWS}; "
    "times are clamped to 1970-9000."
)


def add_routes(app: FastAPI, s: Services) -> None:
    """One key's rate series and every key's small multiple."""

    @app.get("/api/rates", response_model=schemas.RateSeries, tags=["rates"], description=RATES)
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
        keys = [_key_series(s, Scope(scope), key, lo, hi, step) for key in s.facets()[f"{scope}s"]]
        return schemas.KeyRates(
            scope=Scope(scope), step_s=step, keys=[k for k in keys if k is not None]
        )


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
    ordered(since, until)
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


def _key_series(
    services: Services, scope: Scope, key: str, since: datetime, until: datetime, step_s: int
) -> schemas.KeySeries | None:
    """One small multiple: the key's series and its recent share; None if it had no news."""
    points = services.store.rates(scope, key, since, until, step_s)
    total = sum(p.total for p in points)
    if not total:
        return None
    recent = points[-RECENT_WINDOWS:]
    rt, rn = sum(p.total for p in recent), sum(p.negative for p in recent)
    return schemas.KeySeries(
        key=key,
        total=total,
        negative=sum(p.negative for p in points),
        recent_share=rn / rt if rt else None,
        points=[schemas.RatePointOut.of(p, step_s) for p in points],
    )
