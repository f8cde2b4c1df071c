"""``finpulse alerter`` on the real Kafka: the one alert engine, SIGKILLed mid-episode.

Rate deltas go straight onto the sandbox's one-partition ``news.rates`` (what the workers'
index agent sends), so no model is needed: the test is about the alerter driver, its committed
offsets and its SQLite state across a crash.
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta

import pytest
from kafka.admin import KafkaAdminClient, NewTopic
from stream_helpers import Webhook
from test_stream_integration import STARTUP_S

from finpulse.contracts import RateWindow, Scope, encode
from finpulse.settings import Settings
from stream.sandbox import Sandbox
from stream.worker import RatesTopicError, check_rates_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WINDOW_S = 60
BASELINE, BURST, CALM = 10, 4, 10


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def box(tmp_path, webhook, kafka_bootstrap, elasticsearch_url):
    settings = Settings(
        kafka={"bootstrap_servers": kafka_bootstrap},
        elasticsearch={"url": elasticsearch_url},
        stream={"window_s": WINDOW_S, "alert_tick_s": 0.5, "batch_within_s": 0.1},
        alerts={
            "state_db": tmp_path / "alerts.db",
            "late_grace_s": 30 * 86400,  # history: event time, not the wall clock, closes windows
            "notifiers": {"hook": {"type": "webhook", "url": webhook.url}},
            "rules": [
                {
                    "name": "it-alerter",
                    "scope": "ticker",
                    "window_s": WINDOW_S,
                    "params": {"warmup": 6, "cooldown": 3, "resolve_after": 2},
                    "notifiers": ["hook"],
                }
            ],
        },
    )
    sandbox = Sandbox(settings, tmp_path, prefix="it")
    yield sandbox
    sandbox.close()


def send_windows(box: Sandbox, t0: datetime, windows: range) -> None:
    for w in windows:
        negative = 8 if BASELINE <= w < BASELINE + BURST else 1
        for _ in range(2):  # two workers' batches: the alerter adds them up to 20
            window = RateWindow(
                scope=Scope.TICKER,
                key="ACME",
                start=t0 + timedelta(seconds=w * WINDOW_S),
                end=t0 + timedelta(seconds=(w + 1) * WINDOW_S),
                total=10,
                negative=negative,
            )
            box.producer.send(
                box.settings.kafka.rates_topic, key=b"ticker|ACME", value=encode(window)
            )
    box.producer.flush(30)


def test_the_alerter_pages_once_and_resolves_across_a_sigkill(box, webhook):
    t0 = datetime.fromtimestamp((datetime.now(UTC).timestamp() - 3 * 3600) // 60 * 60, UTC)
    first = box.start_worker(18066, alerter=True)
    send_windows(box, t0, range(BASELINE + 2))
    box.wait_for(lambda: webhook.events(), STARTUP_S, "the page")
    (fired,) = webhook.events()
    assert fired[:2] == ("firing", "ACME")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    box.start_worker(18066, alerter=True)
    send_windows(box, t0, range(BASELINE + 2, BASELINE + BURST + CALM))
    box.wait_for(lambda: len(webhook.events()) >= 2, STARTUP_S, "the resolve")
    assert webhook.events() == [fired, ("resolved", "ACME", fired[2])]  # no re-page, no loss


def test_the_alerter_refuses_a_rates_topic_of_several_partitions(box):
    topic = f"{box.uid}.rates-wide"
    admin = KafkaAdminClient(
        bootstrap_servers=box.settings.kafka.bootstrap_servers, request_timeout_ms=30_000
    )
    try:
        admin.create_topics([NewTopic(topic, 2, 1)])
        wide = box.settings.model_copy(
            update={"kafka": box.settings.kafka.model_copy(update={"rates_topic": topic})}
        )
        with pytest.raises(RatesTopicError, match="2 partitions"):
            check_rates_topic(wide)
    finally:
        admin.close()  # the sandbox deletes every topic named after it
