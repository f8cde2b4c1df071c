"""``finpulse crawl`` and ``finpulse replay``: the ingest commands (wired in by ``register``)."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from prometheus_client import CollectorRegistry, start_http_server
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from finpulse.context import settings_from
from finpulse.contracts import Article
from finpulse.settings import Settings
from ingest.crawler import Crawler, PollStats
from ingest.normalise import RawItem
from ingest.sinks.kafka_sink import KafkaSink
from ingest.sources.replay import ReplayOptions, read_rows

err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add ``crawl`` and ``replay`` to the root ``finpulse`` app."""
    app.command("crawl")(crawl)
    app.command("replay")(replay)


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kafka").setLevel(logging.DEBUG if verbose else logging.WARNING)


def _kafka_sink(settings: Settings, registry: CollectorRegistry, topic: str | None) -> KafkaSink:
    ing = settings.ingest
    return KafkaSink(
        settings.kafka,
        topic=topic,
        spool_path=ing.spool_path,
        linger_ms=ing.producer_linger_ms,
        delivery_retries=ing.delivery_retries,
        registry=registry,
    )


def _report(stats: list[PollStats]) -> None:
    if not stats:
        return
    table = Table("source", "items", "produced", "exact dup", "near dup", "errors", "failed")
    for s in stats:
        kinds = ", ".join(f"{k}={v}" for k, v in sorted(s.error_kinds.items()))
        table.add_row(
            s.source,
            str(s.items),
            str(s.produced),
            str(s.exact),
            str(s.near),
            f"{s.errors} {kinds}".strip(),
            "yes" if s.failed else "",
        )
    err.print(table)


def _report_spool(sink: KafkaSink) -> None:
    if sink.spooled:
        err.print(f"[red]{sink.spooled} undeliverable articles kept in {sink.spool_path}[/red]")


def crawl(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="One pass over all sources, then exit.")
    ] = False,
    topic: Annotated[
        str | None, typer.Option(help="Kafka topic (default: kafka.raw_topic).")
    ] = None,
    metrics: Annotated[bool, typer.Option(help="Serve metrics on ingest.metrics_port.")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Crawl the sources listed under ingest.sources into Kafka (continuously, or --once)."""
    _logging(verbose)
    settings = settings_from(ctx)
    if not any(s.enabled for s in settings.ingest.sources):
        err.print("[red]error:[/red] no sources configured: add [[ingest.sources]] to the config")
        raise typer.Exit(2)
    registry = CollectorRegistry()
    if metrics:
        start_http_server(settings.ingest.metrics_port, settings.ingest.metrics_host, registry)
        err.print(
            f"metrics on http://{settings.ingest.metrics_host}:{settings.ingest.metrics_port}/"
        )
    sink = _kafka_sink(settings, registry, topic)
    stats = asyncio.run(_crawl(settings, sink, registry, once))
    _report(stats)
    _report_spool(sink)
    if sink.spooled or any(s.undelivered for s in stats):
        raise typer.Exit(1)


async def _crawl(
    settings: Settings, sink: KafkaSink, registry: CollectorRegistry, once: bool
) -> list[PollStats]:
    async with Crawler(settings.ingest, sink, registry=registry) as crawler:
        if once:
            return await crawler.run_once()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await crawler.run_forever(stop)
        err.print("stopping: flushing pending messages")
        return []


def replay(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="JSONL or CSV file, one article per row.")],
    rate: Annotated[float, typer.Option(help="Rows per second; 0 = as fast as possible.")] = 0.0,
    text_column: Annotated[str, typer.Option(help="Column with the article text.")] = "text",
    title_column: Annotated[str | None, typer.Option(help="Column with a title.")] = None,
    url_column: Annotated[str | None, typer.Option(help="Column with the URL.")] = None,
    time_column: Annotated[
        str | None, typer.Option(help="Column with published_at (else a synthetic timeline).")
    ] = None,
    label_column: Annotated[str | None, typer.Option(help="Column with a label.")] = None,
    labels_out: Annotated[
        Path | None, typer.Option(help="Write {id, label} JSONL for produced articles here.")
    ] = None,
    start: Annotated[
        datetime | None, typer.Option(help="Timeline start, UTC (default: now).")
    ] = None,
    spacing: Annotated[
        float | None, typer.Option(help="Timeline seconds between rows (default 1/rate or 1).")
    ] = None,
    dedup: Annotated[
        bool, typer.Option(help="Drop exact and near repeats (off: one article per row).")
    ] = False,
    lang: Annotated[str | None, typer.Option(help="Fixed language (default: detect).")] = None,
    topic: Annotated[
        str | None, typer.Option(help="Kafka topic (default: kafka.raw_topic).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Push a file's rows into Kafka as articles (backfills, demos, load tests)."""
    _logging(verbose)
    settings = settings_from(ctx)
    if label_column and not labels_out:
        err.print("[yellow]--label-column without --labels-out: labels are not kept[/yellow]")
    try:
        options = ReplayOptions(
            path=file,
            rate=rate,
            text_column=text_column,
            title_column=title_column,
            url_column=url_column,
            time_column=time_column,
            label_column=label_column,
            start=start.astimezone() if start and start.tzinfo is None else start,
            spacing_s=spacing,
            dedup=dedup,
            lang=lang,
        )
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if not file.is_file():
        err.print(f"[red]error:[/red] file not found: {file}")
        raise typer.Exit(2)
    registry = CollectorRegistry()
    sink = _kafka_sink(settings, registry, topic)
    total = sum(1 for _ in read_rows(file, options.format))
    stats = asyncio.run(_replay(settings, sink, registry, options, total, labels_out))
    _report([stats])
    _report_spool(sink)
    err.print(f"replayed {stats.produced} articles from {file} to {sink.topic}")
    if stats.failed or stats.undelivered or sink.spooled:
        raise typer.Exit(1)


async def _replay(
    settings: Settings,
    sink: KafkaSink,
    registry: CollectorRegistry,
    options: ReplayOptions,
    total: int,
    labels_out: Path | None,
) -> PollStats:
    labels = labels_out.open("w", encoding="utf-8") if labels_out else None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=err) as progress:
        task = progress.add_task(f"replay {options.path.name}", total=total)

        def produced(article: Article, item: RawItem) -> None:
            progress.advance(task)
            if labels is not None:
                labels.write(
                    json.dumps({"id": article.id, "label": item.extra.get("label")}) + "\n"
                )

        try:
            async with Crawler(
                settings.ingest, sink, sources=[options], registry=registry, on_produced=produced
            ) as crawler:
                return (await crawler.run_once())[0]
        finally:
            if labels is not None:
                labels.close()
