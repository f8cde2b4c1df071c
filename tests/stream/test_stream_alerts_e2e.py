"""Issue 6 end to end: a negative spike in a replayed stream pages once and resolves once.

The REAL embedded pipeline (``run_embedded``, what ``finpulse run --embedded`` runs):
replay source → scorer (a tiny model trained here so negative headlines are recognised) →
SQLite → rate windows → alert engine → outbox → a webhook receiver on 127.0.0.1 and the
REAL Alertmanager (127.0.0.1:19095). The timeline is history compressed into one-minute
windows (event time drives the detector; ``late_grace_s`` keeps wall-clock ticks from
closing historic windows), and the runner is restarted in the middle of the episode.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from stream_helpers import Webhook

from app.settings import Settings
from stream.cli import run_embedded

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ALERTMANAGER = "http://127.0.0.1:19095"
WINDOW_S = 60
TICKERS = ("ACME", "ZETA")
# Headline templates per sentiment, in words of the tiny model's vocabulary.
HEADLINES = {
    "negative": ["${t} shares plunge on weak loss", "${t} stock fall down on miss"],
    "neutral": ["${t} stock flat steady today", "${t} report says market steady"],
    "positive": ["${t} shares rise on strong growth", "${t} profit beat stock jump"],
}
# (windows, ACME negative of 20 per window); ZETA stays calm at 1 of 10 throughout.
BASELINE, BURST, CALM_AFTER = 10, 4, 14
RESTART_AFTER = BASELINE + 2  # the runner stops two windows into the burst


@pytest.fixture(scope="module")
def model_settings(tmp_path_factory) -> dict:
    """A tiny few-shot model whose sentiment prototypes are the replayed headlines.

    Nearest-prototype on the tiny encoder: no gradient training, so the same model (and
    the same test outcome) on every machine. Checked on the exact headlines replayed.
    """
    from model.data import Labeled
    from model.labels import TOPICS
    from model.registry import Registry
    from model.scorer import Scorer
    from model.train import TrainData, train_model
    from tools.model.tiny import tiny_settings

    root = tmp_path_factory.mktemp("alert-models")
    base = tiny_settings(root)
    examples = {
        label: [t.replace("${t}", f"${ticker}") for t in templates for ticker in TICKERS]
        for label, templates in HEADLINES.items()
    }
    settings = base.model_copy(
        update={
            "zero_shot": base.zero_shot.model_copy(update={"examples": {"sentiment": examples}})
        }
    )
    texts = [x for xs in examples.values() for x in xs]
    data = {
        "sentiment": Labeled("sentiment", texts, [s for s, xs in examples.items() for _ in xs]),
        "topic": Labeled("topic", [t.lower() for t in TOPICS], list(TOPICS)),
    }
    info = train_model("few-shot", settings, TrainData(train=data, valid=data), progress=False)
    Registry(root).promote(info.version)
    scorer = Scorer.load("champion", settings)
    for label, xs in examples.items():
        got = [p.sentiment for p in scorer.predict(xs)]
        assert got == [label] * len(xs), f"the tiny model reads {xs} as {got}, not {label}"
    return settings.model_dump()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def write_replay(path: Path, t0: datetime, windows: range) -> Path:
    """One JSON line per article: 20 ACME and 10 ZETA headlines per one-minute window
    (the replay's article ids come from file name and row, so repeated texts are fine)."""
    rows = []
    for w in windows:
        burst = BASELINE <= w < BASELINE + BURST
        acme_negative = 16 if burst else 2
        for ticker, n, negative in (("ACME", 20, acme_negative), ("ZETA", 10, 1)):
            for i in range(n):
                label = "negative" if i < negative else ("neutral", "positive")[i % 2]
                text = HEADLINES[label][i % 2].replace("${t}", f"${ticker}")
                at = t0 + timedelta(seconds=w * WINDOW_S + (i * 53 + len(ticker)) % WINDOW_S)
                rows.append({"text": text, "published": at.isoformat()})
    rows.sort(key=lambda r: r["published"])
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def am_alerts(rule: str) -> list[dict]:
    r = httpx.get(
        f"{ALERTMANAGER}/api/v2/alerts", params={"filter": f'alertname="{rule}"'}, timeout=5
    )
    r.raise_for_status()
    return r.json()


def test_a_spike_pages_once_survives_a_restart_and_resolves(tmp_path, model_settings, webhook):
    try:
        httpx.get(f"{ALERTMANAGER}/-/ready", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        pytest.fail(f"Alertmanager is not up ({exc!r}): run deploy/local/services.sh up")
    rule = f"it-spike-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        model=model_settings,
        store={"sqlite_path": tmp_path / "finpulse.db"},
        ingest={"dedup_db": tmp_path / "ingest.db", "spool_path": tmp_path / "spool.jsonl"},
        stream={
            "window_s": WINDOW_S,
            "batch_size": 32,
            "batch_within_s": 0.05,
            "alert_tick_s": 0.5,
            "deadletter_path": tmp_path / "deadletter.jsonl",
        },
        alerts={
            "state_db": tmp_path / "alerts.db",
            "late_grace_s": 30 * 86400,  # history: event time, not the wall clock, closes windows
            "notifiers": {
                "hook": {"type": "webhook", "url": webhook.url},
                "am": {"type": "alertmanager", "url": ALERTMANAGER, "repeat_interval_s": 3600},
            },
            "rules": [
                {
                    "name": rule,
                    "scope": "ticker",
                    "window_s": WINDOW_S,
                    "detector": "beta_binomial",
                    "params": {"warmup": 6, "cooldown": 3, "resolve_after": 2},
                    "notifiers": ["hook", "am"],
                }
            ],
        },
    )
    now = datetime.now(UTC)
    t0 = datetime.fromtimestamp((now.timestamp() - 3 * 3600) // WINDOW_S * WINDOW_S, UTC)
    end = BASELINE + BURST + CALM_AFTER

    def replay(windows: range, tag: str):
        path = write_replay(tmp_path / f"{tag}.jsonl", t0, windows)
        return asyncio.run(
            run_embedded(
                settings,
                replay=path,
                time_column="published",
                serve_metrics=False,
                registry=CollectorRegistry(),
            )
        )

    first = replay(range(RESTART_AFTER), "a")
    assert first.new == RESTART_AFTER * 30 and first.deadletters == 0
    (fired,) = webhook.events()
    assert fired[:2] == ("firing", "ACME")
    (am,) = am_alerts(rule)
    assert am["labels"]["alert_id"] == fired[2] and am["status"]["state"] == "active"

    second = replay(range(RESTART_AFTER, end), "b")  # a restarted runner, same state files
    assert second.new == (end - RESTART_AFTER) * 30
    assert webhook.events() == [fired, ("resolved", "ACME", fired[2])]  # no re-page, no loss
    assert am_alerts(rule) == []  # resolved in Alertmanager too
