import threading
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from alerts.config import AlertsSettings
from alerts.engine import AlertEngine, AlertInputError
from alerts.silences import Silence
from finpulse.contracts import AlertState, Evidence, RateWindow

T0 = datetime(2026, 1, 5, tzinfo=UTC)
W = timedelta(seconds=300)


def settings(tmp_path, url, **extra):
    return AlertsSettings(
        state_db=tmp_path / "alerts.db",
        rules=[
            {
                "name": "topic-share",
                "scope": "topic",
                "window_s": 600,
                "step_s": 300,
                "params": {"warmup": 12},
                "notifiers": ["hook"],
            }
        ],
        notifiers={"hook": {"type": "webhook", "url": url}},
        outbox={"backoff_s": 1, "max_backoff_s": 4},
        **extra,
    )


def engine(s):
    return AlertEngine.from_settings(s, CollectorRegistry())


def window(i, neg, total, key="earnings"):
    start = T0 + i * W
    ev = [Evidence(id=f"a{i}", title=f"bad news {i}", url=f"https://ex.com/{i}", negative_prob=0.9)]
    return RateWindow(
        scope="topic", key=key, start=start, end=start + W, total=total, negative=neg, evidence=ev
    )


def counts(i):
    """Quiet share 0.3 with a spike to 0.85 in windows 100-104."""
    total = 20 + (i * 7) % 9
    share = 0.85 if 100 <= i < 105 else 0.3 + 0.05 * ((i * 5) % 3 - 1)
    return round(total * share), total


def replay(eng, windows, partial=True):
    out = []
    for i in windows:
        neg, total = counts(i)
        if partial:  # the stream re-sends an open window with growing counts
            out += eng.process(window(i, neg // 2, total // 2), now=T0 + i * W + W / 2)
        out += eng.process(window(i, neg, total), now=T0 + (i + 1) * W)
    return out


def test_spike_fires_once_survives_restart_and_resolves(tmp_path, receiver):
    s = settings(tmp_path, receiver.url + "/hook")
    first = engine(s)
    out = replay(first, range(0, 102))
    assert [a.state for a in out] == [AlertState.FIRING]
    fired = out[0]
    assert fired.evidence and fired.evidence[0].url.startswith("https://ex.com/")
    assert fired.observed_rate > fired.baseline_rate and fired.negative > 0
    assert first.deliver_pending(now=T0 + 102 * W) == 1
    assert [b["status"] for b in receiver.bodies("/hook")] == ["firing"]
    first.close()

    second = engine(s)  # restart mid-episode: same SQLite
    assert [r.alert.id for r in second.store.list_alerts(AlertState.FIRING)] == [fired.id]
    out = replay(second, range(102, 140))
    assert [(a.state, a.id) for a in out] == [(AlertState.RESOLVED, fired.id)]
    second.tick(now=T0 + 140 * W)
    bodies = receiver.bodies("/hook")
    assert [b["status"] for b in bodies] == ["firing", "resolved"]
    assert bodies[1]["alert"]["id"] == fired.id and bodies[1]["alert"]["resolved_at"]
    history = second.store.list_alerts()
    assert len(history) == 1 and history[0].alert.state is AlertState.RESOLVED


def test_process_only_queues_and_deliver_pending_sends(tmp_path, receiver):
    eng = engine(settings(tmp_path, receiver.url + "/hook"))
    out = replay(eng, range(0, 102))
    assert [a.state for a in out] == [AlertState.FIRING]
    assert receiver.requests == [] and eng.store.outbox_size() == 1  # no I/O in process()
    assert eng.deliver_pending(now=T0 + 102 * W) == 1
    assert [b["status"] for b in receiver.bodies("/hook")] == ["firing"]
    assert eng.store.outbox_size() == 0


def test_restart_before_delivery_delivers_once(tmp_path, receiver):
    s = settings(tmp_path, receiver.url + "/hook")
    crashed = engine(s)
    replay(crashed, range(0, 102))
    crashed.close()  # gone before any delivery: the page must not be lost
    restarted = engine(s)
    restarted.tick(now=T0 + 102 * W)
    restarted.tick(now=T0 + 103 * W)
    assert [b["status"] for b in receiver.bodies("/hook")] == ["firing"]


def test_tick_on_a_worker_thread_while_processing(tmp_path, receiver):
    eng = engine(settings(tmp_path, receiver.url + "/hook"))
    clock, stop, errors = [T0], threading.Event(), []

    def ticker():
        while not stop.is_set():
            try:
                eng.tick(now=clock[0])
            except Exception as exc:
                errors.append(exc)

    worker = threading.Thread(target=ticker)
    worker.start()
    try:
        for i in range(140):
            clock[0] = T0 + (i + 1) * W
            neg, total = counts(i)
            eng.process(window(i, neg, total), now=clock[0])
    finally:
        stop.set()
        worker.join()
    eng.tick(now=T0 + 141 * W)
    assert errors == []
    assert [b["status"] for b in receiver.bodies("/hook")] == ["firing", "resolved"]


def test_quiet_key_resolves_on_tick(tmp_path, receiver):
    eng = engine(settings(tmp_path, receiver.url + "/hook"))
    out = replay(eng, range(0, 102), partial=False)
    assert [a.state for a in out] == [AlertState.FIRING]
    assert eng.tick(now=T0 + 101 * W) == []  # nothing closed yet
    resolved = eng.tick(now=T0 + 130 * W)  # no windows: the rate went to zero
    assert [a.state for a in resolved] == [AlertState.RESOLVED]
    assert [b["status"] for b in receiver.bodies("/hook")] == ["firing", "resolved"]


def test_undeliverable_notification_stays_in_outbox_until_delivered(tmp_path, receiver):
    eng = engine(settings(tmp_path, receiver.url + "/hook"))
    receiver.status = 503
    out = replay(eng, range(0, 102), partial=False)
    assert len(out) == 1
    assert eng.deliver_pending(now=T0 + 101 * W) == 0
    assert eng.store.outbox_size() == 1
    receiver.status = 200
    eng.tick(now=T0 + 102 * W)
    assert eng.store.outbox_size() == 0
    assert [b["status"] for b in receiver.bodies("/hook")] == ["firing"]


def test_repeat_interval_and_ack(tmp_path, receiver):
    eng = engine(
        settings(tmp_path, receiver.url + "/hook", repeat_interval_s=600, late_grace_s=86400)
    )
    alert = replay(eng, range(0, 101), partial=False)[0]
    eng.tick(now=T0 + 101 * W)
    assert len(receiver.bodies("/hook")) == 1  # within the repeat interval
    eng.tick(now=T0 + 101 * W + timedelta(seconds=700))
    assert len(receiver.bodies("/hook")) == 2  # re-notified once, after the interval
    eng.store.acknowledge(alert.id, by="oncall")
    eng.tick(now=T0 + 101 * W + timedelta(seconds=1500))
    assert len(receiver.bodies("/hook")) == 2


def test_silence_suppresses_notification_but_records_alert(tmp_path, receiver):
    eng = engine(settings(tmp_path, receiver.url + "/hook"))
    eng.store.add_silence(
        Silence(matchers=["key=~earn.*"], starts_at=T0, ends_at=T0 + timedelta(days=2))
    )
    out = replay(eng, range(0, 102), partial=False)
    assert len(out) == 1 and eng.store.get_alert(out[0].id) is not None
    assert eng.store.outbox_size() == 0 and eng.deliver_pending(now=T0 + 102 * W) == 0
    assert receiver.bodies("/hook") == []


def test_window_that_does_not_tile_the_rule_is_refused(tmp_path, receiver):
    eng = engine(settings(tmp_path, receiver.url + "/hook"))
    bad = RateWindow(
        scope="topic", key="x", start=T0, end=T0 + timedelta(seconds=420), total=3, negative=1
    )
    with pytest.raises(AlertInputError, match="does not tile"):
        eng.process(bad)


def test_rules_validate_routes_and_params(tmp_path):
    with pytest.raises(ValueError, match="unknown notifier"):
        AlertsSettings(rules=[{"name": "r", "scope": "global", "notifiers": ["nope"]}])
    with pytest.raises(ValueError, match="multiple of step_s"):
        AlertsSettings(rules=[{"name": "r", "scope": "global", "window_s": 900, "step_s": 600}])
