"""An isolated deployment on the real Kafka and Elasticsearch, with worker subprocesses.

What the pipeline benchmark and the integration tests share: its own topics, consumer group
and index (so runs never see each other's data), a config file the workers read, worker
processes that can be stopped, SIGKILLed and restarted, and ways to feed and inspect it.
Workers are subprocesses (``python -m stream.worker``) so a kill is a real crash.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from finpulse.contracts import Article, encode, utcnow
from finpulse.settings import Settings, to_toml
from stream.sinks.elasticsearch import ElasticsearchStore

REPO = Path(__file__).resolve().parents[1]
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
        logs = sorted(self.workdir.glob(f"{self.uid}-worker-*.log"))
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-tail:]}" for p in logs)

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
