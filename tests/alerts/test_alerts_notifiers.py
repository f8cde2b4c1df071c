import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiosmtpd.controller import Controller
from prometheus_client import CollectorRegistry

from alerts.config import AlertsSettings
from alerts.dispatch import Dispatcher
from alerts.metrics import AlertMetrics
from alerts.notifiers import DeliveryError, build
from alerts.store import AlertStore
from finpulse.contracts import Alert, AlertState, Evidence

NOW = datetime.now(UTC).replace(microsecond=0)


def make_alert(state=AlertState.FIRING, key="AAPL", alert_id="a1b2c3"):
    return Alert(
        id=alert_id,
        rule="ticker-negative-volume",
        scope="ticker",
        key=key,
        state=state,
        severity="critical",
        detector="negbinom",
        window_start=NOW - timedelta(hours=1),
        window_end=NOW,
        observed_rate=9,
        baseline_rate=0.4,
        negative=9,
        total=11,
        score=7.5,
        started_at=NOW - timedelta(minutes=30),
        resolved_at=NOW if state is AlertState.RESOLVED else None,
        evidence=[
            Evidence(id="x1", title="Apple recalls", url="https://ex.com/r", negative_prob=0.97)
        ],
    )


def notifiers(configs):
    return build(AlertsSettings(notifiers=configs, rules=[]).notifiers)


def test_webhook_slack_pagerduty_payloads(receiver):
    n = notifiers(
        {
            "hook": {"type": "webhook", "url": receiver.url + "/hook", "headers": {"X-T": "1"}},
            "slack": {"type": "slack", "url": receiver.url + "/slack"},
            "pd": {"type": "pagerduty", "routing_key": "rk", "url": receiver.url + "/pd"},
        }
    )
    for notifier in n.values():
        notifier.send(make_alert())
    n["pd"].send(make_alert(AlertState.RESOLVED))
    ((_path, headers, hook),) = [r for r in receiver.requests if r[0] == "/hook"]
    assert headers["X-T"] == "1" and hook["alert"]["evidence"][0]["url"] == "https://ex.com/r"
    slack = receiver.bodies("/slack")[0]
    assert "AAPL" in slack["text"] and "<https://ex.com/r|Apple recalls>" in str(slack["blocks"])
    trigger, resolve = receiver.bodies("/pd")
    assert trigger["event_action"] == "trigger" and trigger["dedup_key"] == "a1b2c3"
    assert trigger["payload"]["severity"] == "critical" and trigger["links"][0]["href"]
    assert resolve == {"routing_key": "rk", "dedup_key": "a1b2c3", "event_action": "resolve"}


def test_alertmanager_payload_against_local_receiver(receiver):
    am = notifiers({"am": {"type": "alertmanager", "url": receiver.url}})["am"]
    am.send(make_alert())
    am.send(make_alert(AlertState.RESOLVED))
    firing, resolved = (b[0] for b in receiver.bodies("/api/v2/alerts"))
    assert firing["labels"]["alertname"] == "ticker-negative-volume"
    assert datetime.fromisoformat(firing["endsAt"]) > datetime.now(UTC)
    assert datetime.fromisoformat(resolved["endsAt"]) <= datetime.now(UTC)


def test_http_failure_is_a_delivery_error(receiver):
    receiver.status = 500
    hook = notifiers({"hook": {"type": "webhook", "url": receiver.url + "/hook"}})["hook"]
    with pytest.raises(DeliveryError, match="HTTP 500"):
        hook.send(make_alert())
    dead = notifiers({"h": {"type": "webhook", "url": "http://127.0.0.1:9/x", "timeout_s": 1}})
    with pytest.raises(DeliveryError):
        dead["h"].send(make_alert())


class _Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


def test_email_over_local_smtp():
    inbox = _Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        mail = notifiers(
            {"mail": {"type": "email", "host": "127.0.0.1", "port": port, "to": ["oncall@ex.com"]}}
        )["mail"]
        mail.send(make_alert())
    finally:
        controller.stop()
    (env,) = inbox.messages
    assert env.rcpt_tos == ["oncall@ex.com"]
    text = env.content.decode()
    assert "AAPL" in text and "Apple recalls" in text and "X-Finpulse-Alert-Id: a1b2c3" in text


def test_dispatcher_backs_off_and_counts_outcomes(tmp_path, receiver):
    store = AlertStore(tmp_path / "a.db")
    registry = CollectorRegistry()
    metrics = AlertMetrics(registry)
    hook = notifiers({"hook": {"type": "webhook", "url": receiver.url + "/hook"}})
    disp = Dispatcher(hook, store, metrics)
    alert = make_alert()
    store.save_alert(alert)
    receiver.status = 503
    assert disp.route(alert, ["hook"], 3600, NOW) == ["hook"]
    assert disp.flush(NOW) == 0 and disp.flush(NOW) == 0  # second try is not yet due
    receiver.status = 200
    assert disp.flush(NOW + timedelta(seconds=3)) == 1
    sample = registry.get_sample_value
    assert sample("finpulse_notifications_total", {"notifier": "hook", "outcome": "failed"}) == 1
    assert sample("finpulse_notifications_total", {"notifier": "hook", "outcome": "sent"}) == 1
    assert sample("finpulse_notification_outbox_size") == 0


@pytest.mark.integration
def test_real_alertmanager_receives_and_resolves():
    base = "http://127.0.0.1:19095"
    am = notifiers({"am": {"type": "alertmanager", "url": base}})["am"]
    alert_id = uuid.uuid4().hex[:24]
    am.send(make_alert(key="ITEST", alert_id=alert_id))

    def find():
        alerts = httpx.get(
            f"{base}/api/v2/alerts", params={"filter": f'alert_id="{alert_id}"'}, timeout=5
        ).json()
        return alerts[0] if alerts else None

    found = find()
    assert found is not None and found["status"]["state"] == "active"
    assert found["labels"]["key"] == "ITEST"
    am.send(make_alert(AlertState.RESOLVED, key="ITEST", alert_id=alert_id))
    deadline = time.monotonic() + 10
    while (current := find()) is not None and time.monotonic() < deadline:
        if datetime.fromisoformat(current["endsAt"].replace("Z", "+00:00")) <= datetime.now(UTC):
            break
        time.sleep(0.5)
    assert current is None or datetime.fromisoformat(
        current["endsAt"].replace("Z", "+00:00")
    ) <= datetime.now(UTC)
