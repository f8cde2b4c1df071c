"""``finpulse alerter`` on the real Kafka: the one alert engine, SIGKILLed mid-episode.

Rate deltas go straight onto the sandbox's one-partition ``news.rates`` (what the workers'
index agent sends), so no model is needed: the test is about the alerter driver, its committed
offsets and its SQLite state across a crash.
"""

from __future__ import annotations

import signal

import pytest
from kafka.admin import KafkaAdminClient, NewTopic
from test_stream_integration import STARTUP_S

from app.settings import Settings
from stream.worker import RatesTopicError, check_rates_topic
from tools.stream.sandbox import Episode, Sandbox, Webhook

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def episode():
    return Episode()


@pytest.fixture
def box(tmp_path, webhook, episode, kafka_bootstrap, elasticsearch_url):
    settings = Settings(kafka={"bootstrap_servers": kafka_bootstrap},
                        elasticsearch={"url": elasticsearch_url})  # fmt: skip
    sandbox = Sandbox(episode.configured(settings, tmp_path / "alerts.db", webhook.url),
                      tmp_path, prefix="it")  # fmt: skip
    yield sandbox
    sandbox.close()


def test_the_alerter_pages_once_and_resolves_across_a_sigkill(box, webhook, episode):
    first = box.start_worker(18066, alerter=True)
    box.send_windows(episode.deltas(range(episode.baseline + 2)))
    box.wait_for(lambda: webhook.events(), STARTUP_S, "the page")
    (fired,) = webhook.events()
    assert fired[:2] == ("firing", "ACME")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    box.start_worker(18066, alerter=True)
    box.send_windows(episode.deltas(range(episode.baseline + 2, episode.windows)))
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
