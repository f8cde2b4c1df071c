"""``finpulse worker``: one Faust worker process (also ``python -m stream.worker``).

Start several to scale out; they share the topics' partitions through the consumer group
``stream.app_id``. Each serves ``/metrics`` on ``metrics.host:metrics.port``, so give each
worker on one machine its own port (``--web-port`` or ``FINPULSE_METRICS__PORT``).
"""

from __future__ import annotations

import argparse
import logging

from prometheus_client import REGISTRY

from finpulse.settings import Settings, load_settings
from stream.alerting import Alerting
from stream.metrics import StreamMetrics
from stream.scoring import BatchScorer, RegistryModels
from stream.sinks import open_store

log = logging.getLogger(__name__)


def alerting_from(settings: Settings) -> Alerting:
    """The alert engine of ``settings.alerts``, run in-process on every window update."""
    from alerts.engine import AlertEngine  # imported late: only the drivers need alerts

    return Alerting(AlertEngine.from_settings(settings.alerts, REGISTRY))


def run_worker(
    settings: Settings, *, model: str | None = None, alerts: bool = True, loglevel: str = "info"
) -> None:
    """Run until SIGINT/SIGTERM; fails fast when there is no model to score with."""
    import faust

    from stream.faust_app import create_app

    metrics = StreamMetrics(REGISTRY)
    scorer = BatchScorer(
        RegistryModels(settings.model, pin=model),
        metrics,
        check_every_s=settings.stream.model_check_s,
    )
    scorer.refresh(force=True)
    store = open_store(settings)
    if settings.store.backend == "sqlite":
        log.warning("workers write to SQLite %s; set store.backend=elasticsearch to share "
                    "one store between machines", settings.store.sqlite_path)  # fmt: skip
    stream_app = create_app(
        settings, scorer, store, metrics, alerts=alerting_from(settings) if alerts else None
    )
    faust.Worker(stream_app.app, loglevel=loglevel, quiet=True).execute_from_commandline()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m stream.worker", description=__doc__)
    p.add_argument("--config", "-c", help="TOML config file")
    p.add_argument("--model", help="pin a model ref or path instead of following the champion")
    p.add_argument("--web-port", type=int, help="port of /metrics (default metrics.port)")
    p.add_argument("--no-alerts", action="store_true", help="only emit rates to news.rates")
    p.add_argument("--loglevel", default="info", choices=["crit", "error", "warn", "info", "debug"])
    args = p.parse_args(argv)
    settings = load_settings(args.config)
    if args.web_port is not None:
        settings.metrics.port = args.web_port
    run_worker(settings, model=args.model, alerts=not args.no_alerts, loglevel=args.loglevel)


if __name__ == "__main__":
    main()
