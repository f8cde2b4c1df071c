"""``finpulse crawl`` and ``finpulse replay``: the ingest commands (wired in by ``register``)."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Coroutine
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from prometheus_client import CollectorRegistry, start_http_server
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from finpulse.config import KafkaSettings
from finpulse.context import settings_from
from finpulse.contracts import Article
from finpulse.errors import invalid_fields
from finpulse.logrepeat import quiet_repeats
from ingest.config import IngestSettings
from ingest.crawler import Crawler, PollStats
from ingest.dry_run import presets_table
from ingest.normalise import RawItem
from ingest.presets import PresetError
from ingest.presets import apply as apply_presets
from ingest.sinks.kafka_sink import KafkaSink, KafkaUnavailable
from ingest.sources.replay import ReplayOptions, read_rows

err = Console(stderr=True)
out = Console()
T = TypeVar("T")


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
    if not verbose:
        quiet_repeats()


def _kafka_sink(
    kafka: KafkaSettings, ingest: IngestSettings, registry: CollectorRegistry, topic: str | None
) -> KafkaSink:
    return KafkaSink(
        kafka,
        topic=topic,
        spool_path=ingest.spool_path,
        delivery_retries=ingest.delivery_retries,
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
        err.print(
            f"[red]error:[/red] Kafka at {sink.kafka.bootstrap_servers} did not take "
            f"{sink.spooled} articles; they are kept in {sink.spool_path} and sent first by "
            "the next crawl or replay",
            soft_wrap=True,
        )


def _run(main: Coroutine[Any, Any, T], sink: KafkaSink) -> T:
    """Run the ingest loop: an unreachable broker or Ctrl-C ends it with one line, exit 1/130."""
    try:
        return asyncio.run(main)
    except KafkaUnavailable as exc:
        err.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        _report_spool(sink)
        err.print(f"interrupted: {sink.delivered} articles delivered to {sink.topic}")
        raise typer.Exit(130) from None


def crawl(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="One pass over all sources, then exit.")
    ] = False,
    preset: Annotated[
        list[str] | None,
        typer.Option(
            "--preset",
            "-p",
            help="Crawl this preset (or group, e.g. financial) instead of ingest.sources; "
            "repeatable. --list-presets shows them.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Show what would be fetched, poll once, deliver and remember nothing. "
            "Exit 0: every source answered; 1: some failed or were skipped; 2: bad config.",
        ),
    ] = False,
    list_presets: Annotated[
        bool, typer.Option("--list-presets", help="List the presets and exit.")
    ] = False,
    topic: Annotated[
        str | None, typer.Option(help="Kafka topic (default: kafka.raw_topic).")
    ] = None,
    metrics: Annotated[bool, typer.Option(help="Serve metrics on ingest.metrics_port.")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Crawl the sources listed under ingest.sources (or --preset) into Kafka."""
    if list_presets:
        out.print(presets_table())
        return
    _logging(verbose)
    settings = settings_from(ctx)
    ingest, skipped = _with_presets(settings.ingest, preset, lenient=dry_run)
    if dry_run:
        raise typer.Exit(_dry_run(ingest, skipped, verbose))
    registry = CollectorRegistry()
    if metrics:
        start_http_server(ingest.metrics_port, ingest.metrics_host, registry)
        err.print(f"metrics on http://{ingest.metrics_host}:{ingest.metrics_port}/")
    sink = _kafka_sink(settings.kafka, ingest, registry, topic)
    stats = asyncio.run(_crawl(ingest, sink, registry, once))
    _report(stats)
    _report_spool(sink)
    if sink.spooled or any(s.undelivered for s in stats):
        raise typer.Exit(1)


def _with_presets(
    ingest: IngestSettings, preset: list[str] | None, *, lenient: bool
) -> tuple[IngestSettings, dict[str, str]]:
    """``[ingest]`` with the named presets replacing its sources, and the presets skipped for
    a missing requirement (``lenient``, dry runs); a one-line error (exit 2) when none is left."""
    skipped: dict[str, str] = {}
    if preset:
        try:
            ingest, skipped = apply_presets(ingest, preset, lenient=lenient)
        except PresetError as exc:
            err.print(f"[red]error:[/red] {exc}", soft_wrap=True)
            raise typer.Exit(2) from None
    if not any(s.enabled for s in ingest.sources) and not skipped:
        err.print(
            "[red]error:[/red] no sources configured: add \\[\\[ingest.sources]] to the config "
            "or name one with --preset (see --list-presets)"
        )
        raise typer.Exit(2)
    return ingest, skipped


def _dry_run(ingest: IngestSettings, skipped: dict[str, str], verbose: bool) -> int:
    from ingest.dry_run import trial

    if not verbose:  # the report below gives each source's errors once
        logging.getLogger("ingest").setLevel(logging.ERROR)
    stats = asyncio.run(trial(ingest, out)) if ingest.sources else []
    for reason in skipped.values():
        out.print(f"[yellow]- skipped[/yellow] {reason}")
    return 1 if skipped or any(s.failed for s in stats) else 0


async def _crawl(
    ingest: IngestSettings, sink: KafkaSink, registry: CollectorRegistry, once: bool
) -> list[PollStats]:
    async with Crawler(ingest, sink, registry=registry) as crawler:
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
    options = _replay_options(
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
    registry = CollectorRegistry()
    sink = _kafka_sink(settings.kafka, settings.ingest, registry, topic)
    total = sum(1 for _ in read_rows(file, options.format))
    stats = _run(_replay(settings.ingest, sink, registry, options, total, labels_out), sink)
    _report([stats])
    _report_spool(sink)
    err.print(f"replayed {stats.produced} articles from {file} to {sink.topic}")
    if stats.failed or stats.undelivered or sink.spooled:
        raise typer.Exit(1)


def _replay_options(path: Path, **fields: Any) -> ReplayOptions:
    """The replay source's options, or a one-line error (exit 2) for a bad option or file."""
    try:
        options = ReplayOptions(path=path, **fields)
    except ValueError as exc:
        why = invalid_fields(exc) if isinstance(exc, ValidationError) else str(exc)
        err.print(f"[red]error:[/red] {escape(why)}", soft_wrap=True)
        raise typer.Exit(2) from None
    if not path.is_file():
        err.print(f"[red]error:[/red] file not found: {path}")
        raise typer.Exit(2)
    return options


async def _replay(
    ingest: IngestSettings,
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
                ingest, sink, sources=[options], registry=registry, on_produced=produced
            ) as crawler:
                return (await crawler.run_once())[0]
        finally:
            if labels is not None:
                labels.close()
