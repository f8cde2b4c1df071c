"""An isolated deployment on the real Kafka and Elasticsearch, with worker subprocesses.

What the pipeline benchmark, the fault suite and the integration tests share: its own topics,
consumer group and index (so runs never see each other's data), a config file the workers
read, worker processes that can be stopped, SIGKILLed and restarted, and ways to feed and
inspect it. Workers are subprocesses (``python -m stream.worker``) so a kill is a real crash.
For the alerter: a negative :class:`Episode` as rate deltas, and a :class:`Webhook` receiver.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from app.settings import Settings, to_toml
from finpulse.contracts import Article, RateWindow, Scope, encode, utcnow
from stream.sinks.elasticsearch import ElasticsearchStore

REPO = Path(__file__).resolve().parents[2]
KAFKA_TIMEOUT_MS = 30_000


class Sandbox:
    """Topics, group and index named ``<prefix>-<uid>``; call :meth:`close` to remove them."""

    def __init__(self, settings: Settings, workdir: Path, *, prefix: str = "sandbox") -> None:
        from kafka import KafkaProducer
        from kafka.admin import KafkaAdminClient, NewTopic

        self.uid = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        k = settings.kafka.model_copy(
            update={
                "raw_topic": f"{self.uid}.raw",
                "scored_topic": f"{self.uid}.scored",
                "deadletter_topic": f"{self.uid}.deadletter",
                "rates_topic": f"{self.uid}.rates",
            }
        )
        self.settings = settings.model_copy(
            update={
                "kafka": k,
                "elasticsearch": settings.elasticsearch.model_copy(update={"index": self.uid}),
                "stream": settings.stream.model_copy(
                    update={
                        "app_id": self.uid,
                        "faust_dir": self.workdir / "faust",
                    }
                ),
                "store": settings.store.model_copy(update={"backend": "elasticsearch"}),
            }
        )
        parted = [k.raw_topic, k.scored_topic, k.deadletter_topic]
        self.topics = [*parted, k.rates_topic]
        self.admin = KafkaAdminClient(
            bootstrap_servers=k.bootstrap_servers, request_timeout_ms=KAFKA_TIMEOUT_MS
        )
        self.admin.create_topics(
            [NewTopic(t, k.partitions, k.replication_factor) for t in parted]
            + [NewTopic(k.rates_topic, 1, k.replication_factor)]  # the alerter's: one partition
        )
        self.store = ElasticsearchStore(self.settings.elasticsearch)
        self.config = self.workdir / f"{self.uid}.toml"
        self.config.write_text(to_toml(self.settings))  # secrets masked: local services only
        self.procs: list[subprocess.Popen] = []
        self.started = 0  # workers started so far: each gets its own log file
        self.producer = KafkaProducer(
            bootstrap_servers=k.bootstrap_servers,
            acks="all",
            linger_ms=5,
            request_timeout_ms=KAFKA_TIMEOUT_MS,
        )

    # -- workers ---------------------------------------------------------------------
    def start_worker(
        self,
        port: int,
        *,
        model: str | None = None,
        alerter: bool = False,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen:
        """One ``python -m stream.worker`` (``--alerter``: the alert engine) serving /metrics
        on ``port``, with ``env`` added to its environment; output to a log file."""
        cmd = [sys.executable, "-m", "stream.worker", "-c", str(self.config),
               "--web-port", str(port), "--loglevel", "warn"]  # fmt: skip
        if model:
            cmd += ["--model", model]
        if alerter:
            cmd += ["--alerter"]
        self.started += 1
        log = (self.workdir / f"{self.uid}-worker-{self.started}-{port}.log").open("w")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()  # the child holds its own descriptor
        self.procs.append(proc)
        return proc

    def worker_logs(self, tail: int = 3000) -> str:
        """Each worker's first traceback (the cause; what follows is often shutdown noise)
        and the end of its log."""
        out = []
        for p in sorted(self.workdir.glob(f"{self.uid}-worker-*.log")):
            text = p.read_text(errors="replace")
            first = text.find("Traceback", 0, max(0, len(text) - tail))
            cause = f"{text[first : first + tail]}\n[…]\n" if first >= 0 else ""
            out.append(f"--- {p.name}\n{cause}{text[-tail:]}")
        return "\n".join(out)

    # -- data ------------------------------------------------------------------------
    def produce(
        self, articles: Iterable[Article], *, raw: Iterable[bytes] = (), rate: float = 0.0
    ) -> None:
        """Send articles (``fetched_at`` stamped now, as a crawler would) at ``rate``/s (0:
        flat out), then ``raw`` values as they are; returns once Kafka has them all."""
        topic = self.settings.kafka.raw_topic
        start = time.perf_counter()
        for i, a in enumerate(articles):
            if rate:
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            a = a.model_copy(update={"fetched_at": utcnow()})
            self.producer.send(topic, key=a.id.encode(), value=encode(a))
        for value in raw:
            self.producer.send(topic, key=b"raw", value=value)
        self.producer.flush(KAFKA_TIMEOUT_MS / 1000)

    def send_windows(self, deltas: Iterable[RateWindow]) -> None:
        """Rate deltas onto ``news.rates``, keyed as the workers key them; returns once Kafka
        has them all."""
        topic = self.settings.kafka.rates_topic
        for d in deltas:
            self.producer.send(topic, key=f"{d.scope.value}|{d.key}".encode(), value=encode(d))
        self.producer.flush(KAFKA_TIMEOUT_MS / 1000)

    def count(self, *, refresh: bool = True) -> int:
        """Documents in the index; ``refresh=False`` skips forcing a refresh (polling: ES
        refreshes every second by itself, and a forced one per poll costs the pipeline CPU)."""
        if refresh:
            self.store.refresh()
        return self.store.count()

    def ids(self) -> list[str]:
        """Every document id in the index (duplicates would show as repeats)."""
        return list(self.indexed_times())

    def indexed_times(self) -> dict[str, tuple[datetime, datetime]]:
        """id → (fetched_at, indexed_at) of every document."""
        from elasticsearch.helpers import scan

        self.store.refresh()
        hits = scan(
            self.store.es, index=self.store.index_name, _source=["fetched_at", "indexed_at"]
        )
        return {
            h["_id"]: (
                datetime.fromisoformat(h["_source"]["fetched_at"]),
                datetime.fromisoformat(h["_source"]["indexed_at"]),
            )
            for h in hits
        }

    def wait_for(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``cond`` until it holds; a worker that died or a timeout raises with its logs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            dead = [p for p in self.procs if p.poll() not in (None, -signal.SIGKILL)]
            if dead:
                raise RuntimeError(f"a worker exited with {dead[0].returncode} waiting for "
                                   f"{what}:\n{self.worker_logs()}")  # fmt: skip
            time.sleep(0.5)
        raise TimeoutError(f"no {what} after {timeout:.0f}s:\n{self.worker_logs()}")

    def wait_count(self, n: int, timeout: float) -> None:
        self.wait_for(
            lambda: self.count(refresh=False) >= n, timeout, f"{n} articles in {self.uid}"
        )

    # -- teardown --------------------------------------------------------------------
    def stop_workers(self, timeout: float = 30.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)

    def close(self) -> None:
        try:
            self.stop_workers()
        finally:
            self.producer.close()
            self.store.es.indices.delete(index=self.store.index_name, ignore_unavailable=True)
            self.store.close()
            try:  # ours and the ones Faust made (changelogs, assignor)
                made = {t for t in self.admin.list_topics() if t.startswith(self.uid)}
                self.admin.delete_topics(sorted(made | set(self.topics)))
            finally:
                self.admin.close()


def _hours_ago(hours: int = 3) -> datetime:
    """A minute boundary ``hours`` ago."""
    return datetime.fromtimestamp((datetime.now(UTC).timestamp() - hours * 3600) // 60 * 60, UTC)


@dataclass(frozen=True)
class Episode:
    """One ticker's negative episode as the workers' rate deltas on ``news.rates``, so the
    alerter can be tested without a model: ``baseline`` calm windows, ``burst`` negative ones
    (fires), ``calm`` ones (resolves). Each window comes as two deltas of ``DELTA_TOTAL``
    articles (two workers' batches) that the alerter adds up, so a delta lost or applied twice
    shows in the folded total. It starts hours ago: history, closed by event time."""

    key: str = "ACME"
    window_s: int = 60
    baseline: int = 10
    burst: int = 4
    calm: int = 10
    t0: datetime = field(default_factory=_hours_ago)

    DELTA_TOTAL = 10
    DELTAS_PER_WINDOW = 2

    @property
    def windows(self) -> int:
        return self.baseline + self.burst + self.calm

    def deltas(self, windows: range) -> list[RateWindow]:
        """The deltas of window numbers ``windows`` (0 is the first baseline window)."""
        out = []
        for w in windows:
            negative = 8 if self.baseline <= w < self.baseline + self.burst else 1
            start = self.t0 + timedelta(seconds=w * self.window_s)
            end = start + timedelta(seconds=self.window_s)
            delta = RateWindow(scope=Scope.TICKER, key=self.key, start=start, end=end,
                               total=self.DELTA_TOTAL, negative=negative)  # fmt: skip
            out += [delta] * self.DELTAS_PER_WINDOW
        return out

    def configured(self, settings: Settings, state_db: Path, webhook_url: str) -> Settings:
        """``settings`` with one rule on this episode's windows, notifying ``webhook_url``
        only, its state in ``state_db``, and a quick alert tick."""
        alerts = {
            "state_db": state_db,
            "late_grace_s": 30 * 86400,  # history: event time, not the wall clock, closes windows
            "notifiers": {"hook": {"type": "webhook", "url": webhook_url}},
            "rules": [
                {
                    "name": "episode",
                    "scope": "ticker",
                    "window_s": self.window_s,
                    "params": {"warmup": 6, "cooldown": 3, "resolve_after": 2},
                    "notifiers": ["hook"],
                }
            ],
        }
        stream = {"window_s": self.window_s, "alert_tick_s": 0.5, "batch_within_s": 0.1}
        return settings.model_copy(
            update={
                "stream": settings.stream.model_copy(update=stream),
                "alerts": type(settings.alerts).model_validate(alerts),
            }
        )

    def applied(self, saved: dict[str, Any] | None) -> list[int]:
        """Deltas folded into each window, from the alerter's saved windows (``read_state`` of
        ``alerts.state_db`` with suffix ``.windows.json``)."""
        keys = (saved or {}).get("rates", {}).get("keys", {})
        folded = keys.get(f"{Scope.TICKER.value}|{self.key}", {}).get("windows", [])
        totals = {RateWindow.model_validate(w).start: w["total"] for w in folded}
        starts = (self.t0 + timedelta(seconds=w * self.window_s) for w in range(self.windows))
        return [totals.get(s, 0) // self.DELTA_TOTAL for s in starts]


class Webhook:
    """A real HTTP receiver on 127.0.0.1 recording what the webhook notifier POSTs."""

    def __init__(self) -> None:
        self.payloads: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.payloads.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[tuple[str, str, str]]:
        """(status, ticker, alert id) of every notification, in order."""
        return [(p["status"], p["alert"]["key"], p["alert"]["id"]) for p in self.payloads]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
