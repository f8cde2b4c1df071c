"""``finpulse crawl --dry-run``: show what would be fetched, then one pass that delivers nothing
(and ``--list-presets``: what each preset is).

The pass uses an in-memory state store and a sink that only collects, so trying the presets
leaves no trace: a later real crawl still sees every story as new. Without a network each
source gets its own error line and the others carry on.
"""

from __future__ import annotations

from collections import defaultdict
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.table import Table

from finpulse.contracts import Article
from ingest.config import IngestSettings
from ingest.crawler import Crawler, PollStats
from ingest.presets import GROUPS, PRESETS, Preset
from ingest.sinks.base import CallbackSink
from ingest.state import StateStore

SAMPLES = 3


def plan_table(crawler: Crawler) -> Table:
    """One row per source: what is fetched, how often, how politely, under which terms."""
    table = Table("source", "kind", "every", "host spacing", title="plan")
    table.add_column("fetches", overflow="fold")
    table.add_column("terms")
    limiter = crawler.fetcher.limiter if crawler.fetcher else None
    for source in crawler.sources:
        urls = source.urls()
        preset = PRESETS.get(source.name.split(":")[0])
        gaps = [limiter.interval(urlsplit(u).netloc) for u in urls] if limiter else []
        gap = max(gaps, default=0.0)
        table.add_row(
            source.name,
            source.kind,
            f"{source.options.interval_s:g}s",
            f"{gap:g}s",
            urls[0] + (f" (+{len(urls) - 1} more)" if len(urls) > 1 else "") if urls else "",
            preset.terms if preset else "",
        )
    return table


async def trial(settings: IngestSettings, out: Console) -> list[PollStats]:
    """Print the plan, poll every source once, return what each poll did."""
    found: dict[str, list[Article]] = defaultdict(list)
    sink = CallbackSink(lambda a: found[a.source].append(a))
    crawler = Crawler(settings, sink, registry=CollectorRegistry(), store=StateStore(":memory:"))
    async with crawler:
        out.print(plan_table(crawler))
        out.print(f"User-Agent: {settings.effective_user_agent}")
        stats = await crawler.run_once()
    for st in stats:
        report_line(st, found[st.source], out)
    return stats


def report_line(st: PollStats, articles: list[Article], out: Console) -> None:
    if st.failed:
        out.print(f"[red]✗ {st.source}[/red]: {st.error_messages[-1] if st.error_messages else ''}")
        return
    out.print(
        f"[green]✓ {st.source}[/green]: {st.items} items, {st.produced} new articles, "
        f"{st.exact + st.near} repeats, {st.errors} bad items"
    )
    for a in articles[:SAMPLES]:
        tickers = f" [{', '.join(a.tickers)}]" if a.tickers else ""
        out.print(f"    {a.published_at:%Y-%m-%d %H:%M}Z {a.title[:100]}{tickers}", markup=False)


def presets_table() -> Table:
    """Every preset: what it yields, how often, under which terms, what it needs."""

    def needs(p: Preset) -> list[str]:
        return [x for x in (p.needs_contact and "ingest.contact", p.api_key and "API key") if x]

    table = Table("preset", "source and what it yields", "every", "terms", "needs", title="presets")
    for p in PRESETS.values():
        every = f"{p.interval_s:g}s" + (" per ticker" if p.per_ticker else "")
        table.add_row(p.name, f"{p.title}: {p.yields}", every, p.terms, ", ".join(needs(p)))
    for group, members in GROUPS.items():
        group_needs = {x for m in members for x in needs(PRESETS[m])}
        table.add_row(group, "group: " + ", ".join(members), "", "", ", ".join(sorted(group_needs)))
    return table
