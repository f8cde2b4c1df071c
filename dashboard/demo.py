"""``finpulse demo``: a model, a replayed news stream with a negative episode, the dashboard.

The demo runs in real time with short windows (4 s instead of 5 min) so an analyst sees
an episode within a minute without a compressed clock: the detector warms up on half a
minute of ordinary news, then a burst of Bearish stories arrives and the alert fires.
Everything lives under ``var/demo/`` and is reset on each run; the model registry and
the feedback file are the real ones, so a demo correction is real retraining input.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, CollectorRegistry
from rich.console import Console

from alerts.config import RuleConfig
from dashboard.app import create_app
from dashboard.config import ApiSettings
from dashboard.metrics import ApiMetrics
from dashboard.server import metrics_listener, serve
from dashboard.services import Services
from finpulse.context import tool
from finpulse.contracts import AlertState, Scope
from model.data import describe
from model.registry import Registry

if TYPE_CHECKING:
    from app.settings import Settings

DEMO_DIR = Path("var/demo")
WINDOW_S = 4  # seconds per rate window in the demo
RATE = 8.0  # articles per second: 32 per window
WARMUP_WINDOWS = 6  # the detector learns the baseline for ~24 s
BURST_AT_S = 28  # the negative episode starts this long into the replay…
BURST_S = 30  # …and lasts this long


def demo_rules() -> list[RuleConfig]:
    """Production detectors with demo-sized windows and warm-up."""
    params = {"warmup": WARMUP_WINDOWS, "half_life": 150, "cooldown": 8}
    return [
        RuleConfig(name="market-negative-share", scope=Scope.GLOBAL, window_s=WINDOW_S,
                   params=params),
        RuleConfig(name="topic-negative-share", scope=Scope.TOPIC, window_s=3 * WINDOW_S,
                   step_s=WINDOW_S, params=params),
    ]  # fmt: skip


def demo_settings(settings: Settings) -> Settings:
    """The user's settings with the demo's windows, rules and its own store under var/demo."""
    return settings.model_copy(
        update={
            "store": settings.store.model_copy(
                update={"backend": "sqlite", "sqlite_path": DEMO_DIR / "finpulse.db"}
            ),
            "stream": settings.stream.model_copy(
                update={
                    "window_s": WINDOW_S,
                    "batch_within_s": 0.25,
                    "deadletter_path": DEMO_DIR / "deadletter.jsonl",
                }
            ),
            "alerts": settings.alerts.model_copy(
                update={
                    "state_db": DEMO_DIR / "alerts.db",
                    "rules": demo_rules(),
                    "late_grace_s": 2 * WINDOW_S,
                    "notifiers": {},
                }
            ),
        }
    )


def ensure_model(settings: Settings, console: Console) -> str:
    """The champion's version: the registry's, else the model shipped with finpulse.

    The demo never trains: a model trained in a minute would be a toy shown as if real.
    """
    registry = Registry.of(settings.model)
    version = registry.champion_version()
    if version is None:
        raise SystemExit(
            f"no model: {settings.model.registry_dir} has no champion and this install ships "
            "none; import one (`finpulse models import FILE`) or train one (`finpulse train`)"
        )
    info = registry.resolve(version)
    where = "shipped with finpulse" if info.origin.get("kind") == "shipped" else "champion"
    valid = describe(info.meta.get("data"))
    console.print(f"model: {where} [bold]{version}[/bold] (validated on {valid})")
    return version


@dataclass
class DemoReport:
    """What the demo measured, for the closing line (and the tests)."""

    started: float = field(default_factory=time.monotonic)
    first_alert_s: float | None = None
    first_alert: str = ""
    articles: int = 0


async def watch(services: Services, report: DemoReport, say: Callable[[str], None]) -> None:
    """Announce the first alert (with time-to-alert) and a short status every 15 s."""
    last_status = time.monotonic()
    while True:
        firing = await asyncio.to_thread(services.alerts.list_alerts, AlertState.FIRING)
        report.articles = await asyncio.to_thread(services.store.count)
        if firing and report.first_alert_s is None:
            a = min(firing, key=lambda r: r.alert.started_at).alert
            report.first_alert_s = time.monotonic() - report.started
            report.first_alert = f"{a.rule} {a.scope}:{a.key}"
            say(f"[bold red]ALERT[/bold red] after {report.first_alert_s:.0f} s: {a.rule} "
                f"({a.scope}:{a.key}) {a.observed_rate:.0%} negative vs baseline "
                f"{a.baseline_rate:.0%}; open the dashboard to acknowledge it")  # fmt: skip
        if time.monotonic() - last_status >= 15:
            last_status = time.monotonic()
            say(f"{report.articles} articles scored, {len(firing)} alert(s) firing")
        await asyncio.sleep(0.5)


async def run_demo(
    settings: Settings,
    api: ApiSettings,
    replay: Path,
    *,
    say: Callable[[str], None],
    stop: asyncio.Event,
    rate: float = RATE,
    serve_metrics: bool = True,
    registry: CollectorRegistry = REGISTRY,
) -> DemoReport:
    """Pipeline + dashboard until ``stop``; the replay ending leaves the dashboard up."""
    from stream.cli import run_embedded

    services = Services.from_settings(settings, api)
    app = create_app(services, ApiMetrics(api_registry := CollectorRegistry()))
    report = DemoReport()
    server = asyncio.create_task(serve(app, api, stop))
    pipeline = asyncio.create_task(
        run_embedded(
            settings, replay=replay, rate=rate, serve_metrics=serve_metrics, registry=registry
        )
    )
    watcher = asyncio.create_task(watch(services, report, say))
    try:
        with metrics_listener(api, api_registry) if serve_metrics else nullcontext():
            stopped = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait(
                {server, pipeline, stopped}, return_when=asyncio.FIRST_COMPLETED
            )
            if pipeline in done and not stop.is_set():
                stats = pipeline.result()
                say(f"replay finished ({stats.new} articles, {stats.alerts} alert changes); "
                    "the dashboard stays up until Ctrl-C")  # fmt: skip
                done, _ = await asyncio.wait({server, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if server in done:
                server.result()  # the server failed (e.g. port in use): say why
            stopped.cancel()
    finally:
        stop.set()
        for task in (pipeline, watcher):
            task.cancel()
        await asyncio.gather(pipeline, watcher, server, return_exceptions=True)
        services.close()
    return report


def main(settings: Settings, api: ApiSettings, console: Console) -> DemoReport:
    """Run the demo in this process until Ctrl-C."""
    news = tool("dashboard.demo_data")
    ensure_model(settings, console)
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    stream = news.demo_stream(
        settings.data_dir, burst_at=int(BURST_AT_S * RATE), burst_len=int(BURST_S * RATE)
    )
    replay = news.write_jsonl(stream.rows, DEMO_DIR / "stream.jsonl")
    url = f"http://{api.host}:{api.port}"
    console.print(
        f"\nreplaying {len(stream.rows)} stories from {stream.origin}\n"
        f"  {RATE:.0f} per second, {WINDOW_S} s rate windows; a negative episode starts "
        f"~{BURST_AT_S} s in\n"
        f"  dashboard  [bold cyan]{url}[/bold cyan]   (API docs {url}/docs)\n"
        f"  metrics    http://{settings.metrics.host}:{settings.metrics.port}/metrics (pipeline), "
        f"http://{api.metrics_host}:{api.metrics_port}/metrics (API)\n"
        "  Ctrl-C stops everything\n"
    )

    async def run() -> DemoReport:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_demo(
            demo_settings(settings), api, replay, say=lambda m: console.print(m), stop=stop
        )

    report = asyncio.run(run())
    took = f"{report.first_alert_s:.0f} s" if report.first_alert_s is not None else "none yet"
    console.print(f"\nstopped cleanly: {report.articles} articles, first alert: {took}")
    return report
