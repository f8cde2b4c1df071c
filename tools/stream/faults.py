"""Fault-injection suite (``finpulse bench faults``): crashes, outages and poison on the real
services, counted article by article.

Every scenario runs in one :class:`~tools.stream.sandbox.Sandbox` (its own topics, group and index)
with a worker subprocess, and marks its articles with its own ``source``, so one index
serves them all. Per scenario: ``sent`` (good articles produced), ``stored_distinct`` (of
those, distinct ids in Elasticsearch), ``lost``, ``duplicates`` (documents beyond one per
id), ``dead_lettered`` (its poison on the dead-letter topic, each with a reason) and
``passed``. Outages are real: the broker and Elasticsearch are stopped and started with
``deploy/local/services.sh`` (one service at a time, always started again). Exit status 1
when any scenario loses an article or fails its own check. ``alerter_restart`` counts rate
deltas and notifications instead of articles (see :func:`alerter_restart`).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from app.settings import Settings
from finpulse.contracts import Article, article_id, encode, utcnow
from stream.deadletter import HEADER_PREFIX
from stream.state import read_state
from tools.stream.sandbox import KAFKA_TIMEOUT_MS, REPO, Episode, Sandbox, Webhook

err = Console(stderr=True)
SERVICES = REPO / "deploy" / "local" / "services.sh"
PORT = 18080
ALERTER_PORT = 18081
WORKER_START_S = 240.0
DRAIN_S = 240.0
SIGTERM_LIMIT_S = 10.0  # "stops within a few seconds", with room for a loaded box


@dataclass
class Outcome:
    sent: int
    stored_distinct: int
    lost: int
    duplicates: int
    dead_lettered: int
    expected_dead_letters: int
    seconds: float
    passed: bool
    checks: dict[str, Any] = field(default_factory=dict)


def services(*args: str) -> None:
    """``services.sh ARGS``; its output goes to our stderr, a failure raises."""
    subprocess.run([str(SERVICES), *args], check=True, timeout=300)


@contextmanager
def stopped(service: str) -> Iterator[None]:
    """``service`` stopped for the block, started again (and awaited) whatever happens."""
    err.print(f"  stopping {service}")
    services("down", service)
    try:
        yield
    finally:
        err.print(f"  starting {service}")
        services("up")


class Faults:
    """The sandbox, its worker and the counting every scenario shares."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.box = Sandbox(settings, workdir, prefix="faults")
        self.settings = self.box.settings
        self.worker: subprocess.Popen | None = None

    def close(self) -> None:
        self.box.close()

    # -- workers ---------------------------------------------------------------------
    def start_worker(self) -> None:
        self.worker = self.box.start_worker(PORT)

    def ensure_worker(self) -> None:
        """A running worker: one that exited (a failed scenario) is reported and replaced."""
        if self.worker is not None and self.worker.poll() is not None:
            err.print(f"  [red]the worker had exited ({self.worker.returncode}); restarting[/red]")
            self.box.procs.remove(self.worker)
            self.worker = None
        if self.worker is None:
            self.start_worker()

    def wait_worker_ready(self) -> None:
        self.box.wait_for(self._metrics_up, WORKER_START_S, "worker /metrics")

    def _metrics_up(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{PORT}/metrics", timeout=2).is_success
        except httpx.HTTPError:
            return False

    def metric(self, name: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{PORT}/metrics", timeout=5).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name + " ") or line.startswith(name + "{")
        )

    def sigterm_worker(self) -> float:
        """SIGTERM the worker; seconds until it exited (SIGKILLed after 60 s)."""
        assert self.worker is not None
        return stop(self.box, self.worker)

    def log_lines(self) -> int:
        """Lines the workers have logged so far (an outage must not flood the log)."""
        logs = self.box.workdir.glob(f"{self.box.uid}-worker-*.log")
        return sum(len(p.read_bytes().splitlines()) for p in logs)

    # -- data ------------------------------------------------------------------------
    def articles(self, scenario: str, n: int, *, start: int = 0) -> list[Article]:
        t0 = utcnow() - timedelta(minutes=5)
        return [
            Article.create(
                source=f"faults-{scenario}",
                guid=f"{scenario}-{i}",
                title=f"Acme shares {('plunge', 'rise', 'hold')[i % 3]} in test {i}",
                published_at=t0 + timedelta(milliseconds=10 * i),
                tickers=["ACME"] if i % 2 else [],
            )
            for i in range(start, start + n)
        ]

    def produce_raw(self, values: list[bytes]) -> None:
        for value in values:
            self.box.producer.send(self.settings.kafka.raw_topic, key=b"poison", value=value)
        self.box.producer.flush(KAFKA_TIMEOUT_MS / 1000)

    def stored(self, source: str) -> tuple[int, set[str]]:
        """(documents, distinct ids) of ``source`` in the index."""
        from elasticsearch.helpers import scan

        es, index = self.box.store.es, self.box.store.index_name
        self.box.store.refresh()
        query = {"term": {"source": source}}
        count = int(es.count(index=index, query=query)["count"])
        ids = {h["_id"] for h in scan(es, index=index, query={"query": query}, _source=False)}
        return count, ids

    def dead_letters(self, mark: bytes, topic: str | None = None) -> list[str]:
        """Reasons of the dead letters (on ``topic``, default ours) whose original bytes
        contain ``mark``."""
        from kafka import KafkaConsumer, TopicPartition

        topic = topic or self.settings.kafka.deadletter_topic
        c = KafkaConsumer(
            bootstrap_servers=self.settings.kafka.bootstrap_servers,
            enable_auto_commit=False,
            request_timeout_ms=KAFKA_TIMEOUT_MS,
            max_partition_fetch_bytes=2 * 1024 * 1024,
        )
        try:
            parts = [TopicPartition(topic, p) for p in c.partitions_for_topic(topic) or ()]
            end = c.end_offsets(parts)
            c.assign(parts)
            c.seek_to_beginning(*parts)
            reasons = []
            deadline = time.monotonic() + 30
            while any(c.position(tp) < end[tp] for tp in parts) and time.monotonic() < deadline:
                for msgs in c.poll(timeout_ms=500).values():
                    for m in msgs:
                        if mark in (m.value or b""):
                            headers = {k: v.decode() for k, v in m.headers or []}
                            reasons.append(headers.get(HEADER_PREFIX + "reason", "?"))
            return reasons
        finally:
            c.close()

    def wait_stored(self, source: str, n: int, timeout: float = DRAIN_S) -> None:
        self.box.wait_for(lambda: self.stored(source)[0] >= n, timeout, f"{n} of {source}")

    def outcome(
        self,
        scenario: str,
        sent: list[str],
        started: float,
        *,
        source: str | None = None,
        poison: int = 0,
        checks: dict[str, Any] | None = None,
    ) -> Outcome:
        """Wait for the scenario's articles and dead letters, then count them."""
        source = source or f"faults-{scenario}"
        ids = set(sent)
        try:
            self.wait_stored(source, len(ids))
        except TimeoutError as exc:
            err.print(f"  [red]{str(exc).splitlines()[0]}[/red]")
        mark = f"faults-{scenario}".encode()
        deadline = time.monotonic() + 60
        while len(letters := self.dead_letters(mark)) < poison and time.monotonic() < deadline:
            time.sleep(1)
        count, stored = self.stored(source)
        checks = dict(checks or {})
        checks["dead_letter_reasons"] = sorted(letters)
        ok = all(v for k, v in checks.items() if k.endswith("_ok"))
        lost = len(ids - stored)
        return Outcome(
            sent=len(ids),
            stored_distinct=len(ids & stored),
            lost=lost,
            duplicates=count - len(stored),
            dead_lettered=len(letters),
            expected_dead_letters=poison,
            seconds=round(time.monotonic() - started, 1),
            passed=ok and lost == 0 and count == len(stored) and len(letters) == poison,
            checks=checks,
        )


# -- scenarios ---------------------------------------------------------------------------
def _with_poison(f: Faults, name: str, poison: list[bytes], checks: dict | None = None) -> Outcome:
    """Good articles around the poison, in the same batches; the good ones must all land."""
    started = time.monotonic()
    good = f.articles(name, 200)
    f.box.produce(good[:100])
    f.produce_raw(poison)
    f.box.produce(good[100:])
    return f.outcome(name, ids(good), started, poison=len(poison), checks=checks)


def _raw(scenario: str, i: int, **changes: Any) -> dict[str, Any]:
    a = Article.create(
        source=f"faults-{scenario}", guid=f"poison-{scenario}-{i}", title=f"poison {i}",
        published_at=utcnow(),
    )  # fmt: skip
    return {**a.model_dump(mode="json"), **changes}


def poison_malformed(f: Faults) -> Outcome:
    name = "poison_malformed"
    bad = [f"{{not json faults-{name} {i}".encode() for i in range(5)]
    bad.append(b"\xff\xfe faults-" + name.encode())  # not even UTF-8
    return _with_poison(f, name, bad)


def poison_contract(f: Faults) -> Outcome:
    name = "poison_contract"
    bad = [
        {k: v for k, v in _raw(name, 0).items() if k != "title"},
        _raw(name, 1, published_at="yesterday"),
        _raw(name, 2, schema_version=99),
        _raw(name, 3, tickers="ACME"),
        _raw(name, 4, published_at="2026-01-02T03:04:05"),  # no timezone
        [1, 2, 3, f"faults-{name}"],
    ]
    return _with_poison(f, name, [json.dumps(b).encode() for b in bad])


def poison_oversize(f: Faults) -> Outcome:
    """A 1 MB article (over the contract's body limit), and one whose control characters
    make its scored form (JSON-escaped, six bytes each) larger than the producer's limit."""
    name = "poison_oversize"
    huge = _raw(name, 0, body="x" * 1_000_000)
    escaped = _raw(name, 1, body="\x01" * 166_500)
    return _with_poison(f, name, [json.dumps(b).encode() for b in (huge, escaped)])


def poison_id_too_long(f: Faults) -> Outcome:
    name = "poison_id_too_long"
    bad = [_raw(name, i, id=f"{i}-" + "x" * (600 + 4000 * i)) for i in range(2)]
    return _with_poison(f, name, [json.dumps(b).encode() for b in bad])


def poison_far_future(f: Faults) -> Outcome:
    """A story dated 2099 (published and fetched) must not make the next ones late."""
    name = "poison_far_future"
    started = time.monotonic()
    late_before = f.metric("finpulse_rate_late_articles_total")
    future = datetime(2099, 1, 1, tzinfo=UTC)
    odd = Article.create(source=f"faults-{name}", guid=f"{name}-2099", title="Acme in 2099",
                         published_at=future)  # fmt: skip
    f.box.producer.send(f.settings.kafka.raw_topic, key=odd.id.encode(),
                        value=encode(odd.model_copy(update={"fetched_at": future})))  # fmt: skip
    f.box.producer.flush(KAFKA_TIMEOUT_MS / 1000)
    f.wait_stored(f"faults-{name}", 1)
    good = f.articles(name, 500)
    f.box.produce(good)
    result = f.outcome(name, ids([odd, *good]), started)
    late = f.metric("finpulse_rate_late_articles_total") - late_before
    result.checks.update(late_after_2099=late, late_ok=late == 0)
    result.passed = result.passed and late == 0
    return result


def kill9_worker(f: Faults) -> Outcome:
    name = "kill9_worker"
    started = time.monotonic()
    batch = f.articles(name, 1500)
    feeder = _feed(f, batch, rate=150)
    f.wait_stored(f"faults-{name}", 200)
    assert f.worker is not None
    f.worker.kill()
    f.worker.wait(10)
    err.print("  worker SIGKILLed; restarting it")
    f.start_worker()
    feeder.join()
    return f.outcome(name, ids(batch), started)


def broker_restart_under_worker(f: Faults) -> Outcome:
    name = "broker_restart_under_worker"
    started = time.monotonic()
    batch = f.articles(name, 2000)
    f.box.produce(batch)
    f.wait_stored(f"faults-{name}", 200)
    lines = f.log_lines()
    with stopped("kafka"):
        time.sleep(5)
    result = f.outcome(name, ids(batch), started)
    alive = f.worker is not None and f.worker.poll() is None
    result.checks.update(worker_survived_ok=alive, worker_log_lines=f.log_lines() - lines)
    result.passed = result.passed and alive
    return result


def broker_restart_under_replay(f: Faults) -> Outcome:
    """``finpulse replay`` while the broker restarts: what it could not deliver it spools and
    says so (exit 1); the next run sends the spool first. Nothing may be lost."""
    name = "broker_restart_under_replay"
    started = time.monotonic()
    n = 1500
    data = f.box.workdir / f"faults-{name}.csv"
    data.write_text("text\n" + "".join(f"Acme replayed headline {i}\n" for i in range(n)))
    spool = f.box.workdir / f"{name}-spool.jsonl"
    env = {"FINPULSE_INGEST__SPOOL_PATH": str(spool),
           "FINPULSE_KAFKA__REQUEST_TIMEOUT_S": "10"}  # fmt: skip

    def replay(path: Path) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "finpulse", "-c", str(f.box.config), "replay", str(path),
               "--rate", "100", "--lang", "en"]  # fmt: skip
        return subprocess.Popen(cmd, cwd=REPO, env=_env(env), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip

    proc = replay(data)
    time.sleep(4)
    with stopped("kafka"):
        time.sleep(5)
    _, stderr = proc.communicate(timeout=300)
    first_rc = proc.returncode
    spooled = sum(1 for _ in spool.open()) if spool.is_file() else 0
    empty = f.box.workdir / f"{name}-empty.csv"
    empty.write_text("text\n")
    drain = replay(empty)  # an empty replay: sends the spool first
    _, drain_err = drain.communicate(timeout=300)
    source = f"replay:{data.name}"  # a replayed row's id: its file's source and row number
    sent = [article_id(source=source, guid=str(row)) for row in range(1, n + 1)]
    result = f.outcome(name, sent, started, source=source)
    last = [line for line in stderr.splitlines() if line.strip()][-1:] or [""]
    result.checks.update(
        replay_exit=first_rc,
        spooled=spooled,
        replay_last_line=last[0][:200],
        drain_exit=drain.returncode,
        no_traceback_ok="Traceback" not in stderr + drain_err,
        traceback=_traceback(stderr + drain_err),
        exit_ok=(first_rc == 0) == (spooled == 0) and drain.returncode == 0,
    )
    result.passed = result.passed and all(v for k, v in result.checks.items() if k.endswith("_ok"))
    return result


def elasticsearch_outage(f: Faults) -> Outcome:
    """Elasticsearch stopped mid-stream; the worker is SIGTERMed during the outage (it must
    stop within seconds, its batch uncommitted) and restarted; all lands once ES is back."""
    name = "elasticsearch_outage"
    started = time.monotonic()
    batch = f.articles(name, 1500)
    feeder = _feed(f, batch, rate=150)
    f.wait_stored(f"faults-{name}", 150)
    with stopped("elasticsearch"):
        time.sleep(10)
        stop_s = f.sigterm_worker()
        err.print(f"  worker stopped {stop_s}s after SIGTERM during the outage")
        f.start_worker()
        feeder.join()
        time.sleep(10)
    result = f.outcome(name, ids(batch), started)
    result.checks.update(sigterm_stop_s=stop_s, sigterm_ok=stop_s <= SIGTERM_LIMIT_S)
    result.passed = result.passed and stop_s <= SIGTERM_LIMIT_S
    return result


def alerter_restart(f: Faults) -> Outcome:
    """The alert engine (``finpulse alerter``) SIGKILLed mid-episode: after its page, with the
    burst's last windows just sent, then restarted. Its own sandbox (topics, group, alert
    state), fed rate deltas as the workers send them (:class:`~tools.stream.sandbox.Episode`).

    Counted: ``sent`` rate deltas; ``stored_distinct`` deltas folded into the alerter's saved
    windows (each once); ``lost`` deltas missing plus notifications missing (one firing, one
    resolve expected); ``duplicates`` deltas folded twice, alert rows beyond one and
    notifications beyond one per kind; ``dead_lettered`` the alerter's dead letters (none
    expected)."""
    name = "alerter_restart"
    started = time.monotonic()
    ep, hook = Episode(), Webhook()
    workdir = f.box.workdir / name
    state_db = workdir / "alerts.db"
    box = Sandbox(ep.configured(f.settings, state_db, hook.url), workdir, prefix="faults-alerter")
    try:
        first = box.start_worker(ALERTER_PORT, alerter=True)
        box.send_windows(ep.deltas(range(ep.baseline + 2)))
        box.wait_for(hook.events, WORKER_START_S, "the alerter's page")
        paged_s = round(time.monotonic() - started, 1)
        box.send_windows(ep.deltas(range(ep.baseline + 2, ep.baseline + ep.burst)))
        first.kill()
        first.wait(10)
        err.print("  alerter SIGKILLed mid-episode; restarting it")
        restarted = time.monotonic()
        second = box.start_worker(ALERTER_PORT, alerter=True)
        box.send_windows(ep.deltas(range(ep.baseline + ep.burst, ep.windows)))
        saved = state_db.with_suffix(".windows.json")
        expected = [Episode.DELTAS_PER_WINDOW] * ep.windows
        try:
            box.wait_for(lambda: ep.applied(read_state(saved)) == expected and
                         any(e[0] == "resolved" for e in hook.events()),
                         WORKER_START_S, "every window and the resolve")  # fmt: skip
        except TimeoutError as exc:
            err.print(f"  [red]{str(exc).splitlines()[0]}[/red]")
        resolved_s = round(time.monotonic() - restarted, 1)
        time.sleep(3.0)  # a few more alert ticks: a late duplicate would show
        stop(box, second)
        applied = ep.applied(read_state(saved))
        letters = f.dead_letters(b"", topic=box.settings.kafka.deadletter_topic)
    finally:
        hook.close()
        box.close()
    from alerts.store import AlertStore

    store = AlertStore(state_db)
    try:
        rows = [r.alert.state.value for r in store.list_alerts(key=ep.key)]
    finally:
        store.close()
    events = hook.events()
    kinds = [e[0] for e in events]
    sent = len(ep.deltas(range(ep.windows)))
    folded = sum(min(a, Episode.DELTAS_PER_WINDOW) for a in applied)
    missing = sum(1 for k in ("firing", "resolved") if k not in kinds)
    extra = sum(max(0, kinds.count(k) - 1) for k in ("firing", "resolved"))
    over = sum(max(0, a - Episode.DELTAS_PER_WINDOW) for a in applied)
    checks = {
        "windows": ep.windows,
        "deltas_folded_per_window": applied,
        "alert_rows": rows,
        "notifications": kinds,
        "one_alert_ok": rows == ["resolved"] and len({e[2] for e in events}) == 1,
        "firing_before_resolve_ok": kinds == ["firing", "resolved"],
        "page_s": paged_s,
        "resolve_after_restart_s": resolved_s,
    }
    lost = sent - folded + missing
    duplicates = over + max(0, len(rows) - 1) + extra
    ok = all(v for k, v in checks.items() if k.endswith("_ok"))
    return Outcome(
        sent=sent,
        stored_distinct=folded,
        lost=lost,
        duplicates=duplicates,
        dead_lettered=len(letters),
        expected_dead_letters=0,
        seconds=round(time.monotonic() - started, 1),
        passed=ok and lost == 0 and duplicates == 0 and not letters,
        checks=checks,
    )


def stop(box: Sandbox, proc: subprocess.Popen) -> float:
    """SIGTERM one of ``box``'s processes; seconds until it exited (SIGKILLed after 60 s)."""
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    box.procs.remove(proc)  # stopped on purpose: its exit is no failure
    return round(time.monotonic() - start, 1)


def _traceback(text: str) -> str | None:
    """The first traceback in ``text``, shortened, to say what went wrong."""
    at = text.find("Traceback")
    return None if at < 0 else text[max(0, at - 300) : at + 1500]


def ids(articles: list[Article]) -> list[str]:
    return [a.id for a in articles]


def _feed(f: Faults, batch: list[Article], rate: float) -> threading.Thread:
    t = threading.Thread(target=f.box.produce, args=(batch,), kwargs={"rate": rate}, daemon=True)
    t.start()
    return t


def _env(extra: dict[str, str]) -> dict[str, str]:
    import os

    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


SCENARIOS: dict[str, Callable[[Faults], Outcome]] = {
    f.__name__: f
    for f in (
        poison_malformed,
        poison_contract,
        poison_oversize,
        poison_id_too_long,
        poison_far_future,
        kill9_worker,
        elasticsearch_outage,
        broker_restart_under_worker,
        broker_restart_under_replay,
        alerter_restart,
    )
}


def run(settings: Settings, names: list[str], workdir: Path) -> dict[str, Any]:
    """Run ``names`` in one sandbox; returns the report (see the module docstring)."""
    f = Faults(configured(settings, workdir), workdir)
    results: dict[str, Any] = {}
    try:
        f.start_worker()
        f.wait_worker_ready()
        for name in names:
            err.print(f"[bold]{name}[/bold]")
            f.ensure_worker()
            try:
                results[name] = asdict(SCENARIOS[name](f))
            except Exception as exc:  # one broken scenario must not hide the others
                results[name] = {"passed": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}
            err.print(f"  {json.dumps(results[name])[:400]}")
    finally:
        f.close()
    keys = ("sent", "stored_distinct", "lost", "duplicates", "dead_lettered", "seconds")
    totals = {k: round(sum(r.get(k, 0) for r in results.values()), 1) for k in keys}
    totals["passed"] = all(r.get("passed") for r in results.values())
    return {"scenarios": results, "totals": totals,
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip


def configured(settings: Settings, workdir: Path) -> Settings:
    """Tiny model (the suite is about faults, not accuracy), quick retries, 4 partitions."""
    from tools.model.tiny import tiny_settings, train_tiny_model

    err.print("training a tiny model for the workers")
    train_tiny_model(workdir / "models")
    return settings.model_copy(
        update={
            "model": tiny_settings(workdir / "models"),
            "stream": settings.stream.model_copy(
                update={"batch_size": 32, "store_retry_initial_s": 0.2, "store_retry_max_s": 2.0}
            ),
        }
    )


def main(settings: Settings, scenario: str | None = None) -> int:
    """Print the JSON report; 0 when every scenario passed."""
    names = [scenario] if scenario else list(SCENARIOS)
    if not _services_up():
        services("up")
    with tempfile.TemporaryDirectory(prefix="finpulse-faults-") as tmp:
        report = run(settings, names, Path(tmp))
    print(json.dumps(report, indent=2))
    return 0 if report["totals"]["passed"] else 1


def _services_up() -> bool:
    out = subprocess.run([str(SERVICES), "status"], capture_output=True, text=True, timeout=60)
    try:
        return all(s.get("up") for s in json.loads(out.stdout).values())
    except ValueError:
        return False
