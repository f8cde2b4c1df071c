"""``finpulse worker`` and ``finpulse alerter`` (also ``python -m stream.worker [--alerter]``).

Workers scale out: start several and they share the topics' partitions through the
consumer group ``stream.app_id``. Each serves ``/metrics`` on ``metrics.host:metrics.port``,
so give each worker on one machine its own port (``--web-port`` or ``FINPULSE_METRICS__PORT``).

The alerter is a singleton: the one alert engine of the cluster, fed by the single partition
of ``news.rates`` (see ``stream/README.md``). Run exactly one, with ``alerts.state_db`` on a
persistent volume; a second one waits as a standby without that state.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry

from finpulse.logrepeat import quiet_repeats
from finpulse.retry import Backoff
from ingest.sinks.kafka_sink import ensure_topics
from stream.alerting import Alerting
from stream.metrics import StreamMetrics
from stream.scoring import BatchScorer, RegistryModels
from stream.sinks import open_store
from stream.sinks.base import Store, StoreUnavailable
from stream.state import read_state

if TYPE_CHECKING:
    from app.settings import Settings

log = logging.getLogger(__name__)


class RatesTopicError(RuntimeError):
    """``news.rates`` has more than one partition, so one engine could not own every key."""


def alerting_from(settings: Settings, registry: CollectorRegistry = REGISTRY) -> Alerting:
    """The alert engine of ``settings.alerts`` behind the stream's bridge."""
    from alerts.engine import AlertEngine  # imported late: only the drivers need alerts

    return Alerting(AlertEngine.from_settings(settings.alerts, registry))


def run_worker(settings: Settings, *, model: str | None = None, loglevel: str = "info") -> None:
    """Run until SIGINT/SIGTERM; fails fast when there is no model to score with.

    The topics are created (and their leaders awaited) before the consumer group is joined:
    a group that joins first is assigned none of a topic that appears a moment later, until
    its next metadata refresh. That left a fresh deployment's ``index`` agent without
    ``news.scored`` for five minutes.
    """
    from stream.faust_app import create_app

    metrics = StreamMetrics(REGISTRY)
    scorer = BatchScorer(
        RegistryModels(settings.model, pin=model),
        metrics,
        check_every_s=settings.stream.model_check_s,
    )
    scorer.refresh(force=True)
    store = _open_store_waiting(settings)
    if settings.store.backend == "sqlite":
        log.warning("workers write to SQLite %s; set store.backend=elasticsearch to share "
                    "one store between machines", settings.store.sqlite_path)  # fmt: skip
    k = settings.kafka
    parted = (k.raw_topic, k.scored_topic, k.deadletter_topic)
    ensure_topics(k, {**dict.fromkeys(parted, k.partitions), k.rates_topic: 1})
    stream_app = create_app(settings, scorer, store, metrics)
    _faust_worker(stream_app.app, loglevel=loglevel, quiet=True).execute_from_commandline()


def run_alerter(settings: Settings, *, port: int | None = None, loglevel: str = "info") -> None:
    """Run the cluster's alert engine until SIGINT/SIGTERM."""
    from stream.faust_app import create_alerter_app

    end = check_rates_topic(settings)
    k = settings.kafka
    ensure_topics(k, {k.rates_topic: 1, k.deadletter_topic: k.partitions})
    state = settings.alerts.state_db.with_suffix(".windows.json")
    saved = read_state(state)
    if saved is not None and saved.get("offset", -1) >= end:
        log.warning("%s is at offset %d, behind the saved %d: the topic was re-created; "
                    "starting the open windows from zero", settings.kafka.rates_topic, end,
                    saved["offset"])  # fmt: skip
        state.unlink()
    metrics = StreamMetrics(REGISTRY)
    alerter = create_alerter_app(
        settings,
        alerting_from(settings),
        metrics,
        port=settings.stream.alerter_port if port is None else port,
        state=state,
    )
    _faust_worker(alerter.app, loglevel=loglevel, quiet=True).execute_from_commandline()


def _open_store_waiting(settings: Settings) -> Store:
    """The store, waited for with capped backoff (a worker started during an outage used to
    crash with a traceback); SIGTERM ends the wait."""
    backoff = Backoff(1.0, 30.0)
    while True:
        try:
            return open_store(settings)
        except StoreUnavailable as exc:
            delay = backoff.next()
            log.warning("store unavailable (%s); retrying in %.0fs", exc, delay)
            time.sleep(delay)


def _faust_worker(app: Any, **kwargs: Any) -> Any:
    """A ``faust.Worker`` whose log handlers hold back repeated lines (an outage's retries)
    and that is out within :data:`STOP_GRACE_S` of SIGTERM/SIGINT.

    Faust's graceful stop was seen taking 5-35 s while Elasticsearch was down. Past the
    grace the process exits at once: that is a crash the pipeline is built for (the kill -9
    scenario of ``finpulse bench faults``): batches not yet acked are not committed, and
    their next owner redoes them idempotently.
    """
    import faust

    class Worker(faust.Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            quiet_repeats(logger)

        async def stop(self) -> None:
            _exit_after(STOP_GRACE_S)
            await super().stop()

    return Worker(app, **kwargs)


STOP_GRACE_S = 8.0
_deadline: list[threading.Timer] = []


def _exit_after(seconds: float) -> None:
    """Once per process: end it ``seconds`` from now unless it has ended by itself."""
    if _deadline:
        return

    def leave() -> None:
        log.error("still stopping after %.0fs; exiting now (unacked batches are redelivered)",
                  seconds)  # fmt: skip
        os._exit(0)

    timer = threading.Timer(seconds, leave)
    timer.daemon = True
    _deadline.append(timer)
    timer.start()


def check_rates_topic(settings: Settings) -> int:
    """Refuse a ``news.rates`` of several partitions (a missing one is created with one);
    returns its end offset."""
    from kafka import KafkaConsumer, TopicPartition

    k = settings.kafka
    consumer = KafkaConsumer(**k.client_config(f"{settings.stream.app_id}-rates-check"))
    try:
        partitions = consumer.partitions_for_topic(k.rates_topic) or set()
        tp = TopicPartition(k.rates_topic, 0)
        end = consumer.end_offsets([tp])[tp] if partitions else 0
    finally:
        consumer.close()
    if len(partitions) > 1:
        raise RatesTopicError(
            f"topic {k.rates_topic} has {len(partitions)} partitions; the alerter needs 1 so one "
            f"engine sees every key. It holds only derived windows: delete it "
            f"(kafka-topics.sh --delete --topic {k.rates_topic}) and restart the workers"
        )
    return end


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m stream.worker", description=__doc__)
    p.add_argument("--config", "-c", help="TOML config file")
    p.add_argument("--alerter", action="store_true", help="run the alert engine, not a worker")
    p.add_argument("--model", help="pin a model ref or path instead of following the champion")
    p.add_argument(
        "--web-port", type=int, help="port of /metrics (metrics.port; alerter: stream.alerter_port)"
    )
    p.add_argument("--loglevel", default="info", choices=["crit", "error", "warn", "info", "debug"])
    args = p.parse_args(argv)
    from app.settings import load_settings  # an entry point, like the root command

    settings = load_settings(args.config)
    if args.alerter:
        run_alerter(settings, port=args.web_port, loglevel=args.loglevel)
        return
    if args.web_port is not None:
        settings.metrics.port = args.web_port
    run_worker(settings, model=args.model, loglevel=args.loglevel)


if __name__ == "__main__":
    main()
