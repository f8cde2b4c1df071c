"""The alert state file: per-alert notification order, a locked file, a corrupt file."""

import sqlite3
import threading
import time
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry
from test_alerts_notifiers import NOW, make_alert, notifiers

from alerts.dispatch import Dispatcher
from alerts.metrics import AlertMetrics
from alerts.store import AlertStore, CorruptState, StateLocked
from finpulse.contracts import AlertState


def test_resolve_waits_for_its_firing_notification_being_retried(tmp_path, receiver):
    """A resolve queued while its firing notification backs off is sent after it, not before."""
    store = AlertStore(tmp_path / "a.db")
    hook = notifiers({"hook": {"type": "webhook", "url": receiver.url + "/hook"}})
    disp = Dispatcher(hook, store, AlertMetrics(CollectorRegistry()))
    firing, resolved = make_alert(), make_alert(AlertState.RESOLVED)
    other = make_alert(key="MSFT", alert_id="other")
    store.save_alert(firing)
    receiver.status = 503
    disp.route(firing, ["hook"], 3600, NOW)
    assert disp.flush(NOW) == 0  # failed: next try in 2 s
    receiver.status = 200
    disp.route(resolved, ["hook"], 3600, NOW + timedelta(seconds=1))
    disp.route(other, ["hook"], 3600, NOW + timedelta(seconds=1))
    # The resolve is past its time, but its firing one is still pending: only MSFT goes.
    assert disp.flush(NOW + timedelta(seconds=1)) == 1
    assert disp.flush(NOW + timedelta(seconds=3)) == 1  # the firing one, retried
    assert disp.flush(NOW + timedelta(seconds=3)) == 1  # now its resolve
    sent = [(b["alert"]["id"], b["status"]) for b in receiver.bodies("/hook")]
    assert sent == [("other", "firing"), ("a1b2c3", "firing"), ("a1b2c3", "resolved")]
    assert store.outbox_size() == 0


def test_order_is_per_notifier(tmp_path):
    """A receiver that is down holds back only its own queue, not another receiver's."""
    store = AlertStore(tmp_path / "a.db")
    store.enqueue("down", make_alert(), NOW)
    store.enqueue("down", make_alert(AlertState.RESOLVED), NOW)
    store.enqueue("up", make_alert(), NOW)
    store.enqueue("up", make_alert(AlertState.RESOLVED), NOW)
    due = store.due(NOW + timedelta(seconds=1))
    assert [(i.notifier, i.kind) for i in due] == [("down", "firing"), ("up", "firing")]
    store.delivered(due[1].id)
    store.reschedule(due[0].id, NOW + timedelta(minutes=5), "503")
    due = store.due(NOW + timedelta(seconds=1))
    assert [(i.notifier, i.kind) for i in due] == [("up", "resolved")]


def test_an_old_outbox_gains_the_alert_column(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, notifier TEXT NOT NULL, "
        "kind TEXT NOT NULL, alert TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, "
        "next_attempt_at REAL NOT NULL, last_error TEXT, created_at REAL NOT NULL)"
    )
    for alert in (make_alert(), make_alert(AlertState.RESOLVED)):
        db.execute(
            "INSERT INTO outbox (notifier, kind, alert, next_attempt_at, created_at) "
            "VALUES ('hook', ?, ?, 0, 0)",
            (str(alert.state), alert.model_dump_json()),
        )
    db.commit()
    db.close()
    store = AlertStore(path)
    assert [i.kind for i in store.due(NOW)] == [AlertState.FIRING]


def hold_write_lock(path, seconds: float) -> threading.Event:
    """Another process's writer (an sqlite3 shell, a CLI ack) holding the file's lock."""
    taken = threading.Event()

    def hold() -> None:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        taken.set()
        time.sleep(seconds)
        db.execute("ROLLBACK")
        db.close()

    threading.Thread(target=hold, daemon=True).start()
    assert taken.wait(5)
    return taken


def test_a_locked_file_delays_a_write_and_loses_nothing(tmp_path):
    path = tmp_path / "a.db"
    store = AlertStore(path, busy_timeout_s=0.1, lock_wait_s=10)
    hold_write_lock(path, 1.0)
    start = time.monotonic()
    with store.transaction():  # the engine's window: state and alert in one commit
        store.save_state("rule", "AAPL", {"n": 1})
        store.save_alert(make_alert())
    assert time.monotonic() - start >= 0.5  # it waited (retrying), then wrote
    assert store.load_states() == {("rule", "AAPL"): {"n": 1}}
    assert store.get_alert("a1b2c3") is not None


def test_a_lock_held_past_the_bound_fails_before_the_body_runs(tmp_path):
    path = tmp_path / "a.db"
    store = AlertStore(path, busy_timeout_s=0.1, lock_wait_s=0.3)
    hold_write_lock(path, 2.0)
    ran = []
    with pytest.raises(StateLocked, match="locked by another process"), store.transaction():
        ran.append(True)
    assert ran == []
    time.sleep(2)
    store.save_state("rule", "AAPL", {"n": 2})  # usable again once the lock is gone
    assert store.load_states()[("rule", "AAPL")] == {"n": 2}


def test_a_corrupt_file_is_named_with_what_to_do(tmp_path):
    path = tmp_path / "alerts.db"
    path.write_bytes(b"this is not a database\n" * 200)
    with pytest.raises(CorruptState, match=r"alerts\.db is not a readable SQLite database.*mv "):
        AlertStore(path)
