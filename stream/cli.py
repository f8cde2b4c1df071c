"""The stream commands: ``worker``, ``alerter``, ``run --embedded`` and ``bench pipeline``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from kafka.errors import KafkaError
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from rich.console import Console

from finpulse.context import settings_from, tool
from finpulse.logrepeat import quiet_repeats
from ingest.presets import PresetError
from ingest.presets import apply as apply_presets
from stream.deadletter import JsonlDeadLetters
from stream.embedded import EmbeddedRunner, RunStats
from stream.metrics import StreamMetrics
from stream.scoring import BatchScorer, NoModelError, RegistryModels
from stream.sinks.sqlite import SqliteStore
from stream.state import StateError, StateLock
from stream.worker import RatesTopicError, alerting_from, run_alerter, run_worker

if TYPE_CHECKING:
    from app.settings import Settings
    from ingest.crawler import Crawler

err = Console(stderr=True, soft_wrap=True)  # an error is one line, however long


def register(app: typer.Typer) -> None:
    """Add ``worker``, ``alerter`` and ``run`` (the root adds ``bench_pipeline`` to bench)."""
    app.command("worker")(worker)
    app.command("alerter")(alerter)
    app.command("run")(run)


Model = Annotated[
    str | None, typer.Option(help="Pin a model ref or path (default: follow the champion).")
]
LogLevel = Annotated[str, typer.Option(help="crit|error|warn|info|debug")]


def worker(
    ctx: typer.Context,
    model: Model = None,
    web_port: Annotated[
        int | None, typer.Option(help="Port of /metrics (default metrics.port).")
    ] = None,
    loglevel: LogLevel = "info",
) -> None:
    """Run one Faust worker: score news.raw, index news.scored, aggregate rates to news.rates."""
    settings = settings_from(ctx)
    if web_port is not None:
        settings.metrics.port = web_port
    try:
        run_worker(settings, model=model, loglevel=loglevel)
    except (NoModelError, KafkaError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def alerter(
    ctx: typer.Context,
    web_port: Annotated[
        int | None, typer.Option(help="Port of /metrics (default stream.alerter_port).")
    ] = None,
    loglevel: LogLevel = "info",
) -> None:
    """Run the cluster's one alert engine on news.rates (exactly one beside the workers)."""
    try:
        run_alerter(settings_from(ctx), port=web_port, loglevel=loglevel)
    except (RatesTopicError, StateError, KafkaError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def run(
    ctx: typer.Context,
    embedded: Annotated[
        bool, typer.Option("--embedded", help="The whole pipeline in this process (required).")
    ] = False,
    replay: Annotated[
        Path | None, typer.Option(help="Replay this JSONL/CSV file instead of crawling.")
    ] = None,
    rate: Annotated[float, typer.Option(help="Replay rows per second; 0 = flat out.")] = 0.0,
    preset: Annotated[
        list[str] | None,
        typer.Option(
            "--preset",
            "-p",
            help="Crawl this source preset (or group, e.g. financial) instead of ingest.sources; "
            "repeatable. `finpulse crawl --list-presets` shows them.",
        ),
    ] = None,
    time_column: Annotated[
        str | None, typer.Option(help="Replay column of publication times (default: now on).")
    ] = None,
    model: Model = None,
    alerts: Annotated[bool, typer.Option(help="Run the alert engine.")] = True,
) -> None:
    """Crawl (or replay), score, store in SQLite and alert, all in one process."""
    _check_run(embedded=embedded, preset=preset, replay=replay)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    quiet_repeats()
    settings = _with_presets(settings_from(ctx), preset)
    try:
        stats = asyncio.run(
            run_embedded(
                settings,
                replay=replay,
                rate=rate,
                time_column=time_column,
                model=model,
                alerts=alerts,
            )
        )
    except (NoModelError, StateError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    err.print(
        f"received {stats.received}, scored {stats.scored}, new in store {stats.new}, "
        f"dead letters {stats.deadletters}, alerts {stats.alerts}"
    )


def _check_run(*, embedded: bool, preset: list[str] | None, replay: Path | None) -> None:
    """Options of ``run`` that cannot go together, each refused in one line (exit 2)."""
    if not embedded:
        err.print("[red]error:[/red] only --embedded is supported here; the Kafka path is "
                  "`finpulse crawl` + `finpulse worker`")  # fmt: skip
        raise typer.Exit(2)
    if preset and replay is not None:
        err.print("[red]error:[/red] --preset crawls live sources; it cannot be used with --replay")
        raise typer.Exit(2)
    if replay is not None and not replay.is_file():
        err.print(f"[red]error:[/red] file not found: {replay}")
        raise typer.Exit(2)


def _with_presets(settings: Settings, preset: list[str] | None) -> Settings:
    """``settings`` whose ingest sources are the named presets (when any)."""
    if not preset:
        return settings
    try:
        ingest, _ = apply_presets(settings.ingest, preset)
    except PresetError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    return settings.model_copy(update={"ingest": ingest})


async def run_embedded(
    settings: Settings,
    *,
    replay: Path | None = None,
    rate: float = 0.0,
    time_column: str | None = None,
    model: str | None = None,
    alerts: bool = True,
    serve_metrics: bool = True,
    registry: CollectorRegistry = REGISTRY,
) -> RunStats:
    """Run until the replay ends, or until SIGINT/SIGTERM when crawling.

    Rate windows are saved beside the SQLite store (``<store>.rates.json``) and alert state
    in ``alerts.state_db``, so a restarted run carries on where the last one stopped. Both
    are locked for the run (:class:`StateLock`): a second runner on them raises
    :class:`StateError` instead of overwriting this one's windows.
    """
    from ingest.crawler import Crawler
    from ingest.sinks.base import CallbackSink
    from ingest.sources.replay import ReplayOptions

    with _lock_state(settings, alerts=alerts):
        s = settings.stream
        metrics = StreamMetrics(registry)
        scorer = BatchScorer(
            RegistryModels(settings.model, pin=model), metrics, check_every_s=s.model_check_s
        )
        store = SqliteStore(settings.store.sqlite_path)
        alerting = alerting_from(settings, registry) if alerts else None
        runner = EmbeddedRunner.create(
            s, scorer, store, JsonlDeadLetters(s.deadletter_path), metrics,
            evidence_size=settings.alerts.evidence_size, alerts=alerting,
            rates_state=settings.store.sqlite_path.with_suffix(".rates.json"),
        )  # fmt: skip
        sources = replay and [ReplayOptions(path=replay, rate=rate, time_column=time_column)]
        sink = CallbackSink(runner.put)
        crawler = Crawler(settings.ingest, sink, sources=sources, registry=registry)
        if serve_metrics:
            server, _ = start_http_server(
                settings.metrics.port, addr=settings.metrics.host, registry=registry
            )
        try:
            return await runner.run(_feed(crawler, once=replay is not None))
        finally:
            if alerting is not None:
                await alerting.close()
            store.close()
            if serve_metrics:
                server.shutdown()
                server.server_close()


async def _feed(crawler: Crawler, *, once: bool) -> None:
    """The crawler's articles: a replay once through, else until SIGINT/SIGTERM."""
    async with crawler:
        if once:
            await crawler.run_once()
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await crawler.run_forever(stop)


def _lock_state(settings: Settings, *, alerts: bool) -> contextlib.ExitStack:
    """Hold the store's and the alert database's locks until the returned stack closes."""
    paths = [settings.store.sqlite_path, *([settings.alerts.state_db] if alerts else [])]
    with contextlib.ExitStack() as locks:
        for path in dict.fromkeys(paths):
            locks.enter_context(StateLock(path))
        return locks.pop_all()


def bench_pipeline(
    ctx: typer.Context,
    n: Annotated[int, typer.Option(help="Articles per run.")] = 2000,
    workers: Annotated[str, typer.Option(help="Worker counts to run, comma-separated.")] = "1,2",
    embedded: Annotated[bool, typer.Option(help="Also run the embedded runner.")] = True,
    model: Model = None,
) -> None:
    """Replay N articles through Kafka → worker(s) → Elasticsearch; print JSON."""
    bench = tool("stream.bench")
    bench.main(settings_from(ctx), n=n, workers=[int(w) for w in workers.split(",")],
               embedded=embedded, model=model)  # fmt: skip


def bench_faults(
    ctx: typer.Context,
    scenario: Annotated[
        str | None, typer.Option(help="Run only this scenario (default: all of them).")
    ] = None,
) -> None:
    """Crash, outage and poison scenarios on the real services; print JSON, exit 1 on a loss."""
    faults = tool("stream.faults")
    if scenario is not None and scenario not in faults.SCENARIOS:
        err.print(
            f"[red]error:[/red] no scenario {scenario!r}; one of: {', '.join(faults.SCENARIOS)}"
        )
        raise typer.Exit(2)
    raise typer.Exit(faults.main(settings_from(ctx), scenario))
