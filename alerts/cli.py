"""``finpulse alerts``: backtest, evaluate, silences, alert listing and acknowledgement."""

from __future__ import annotations

import json
import time
from datetime import UTC, timedelta, tzinfo
from pathlib import Path
from typing import Annotated

import typer

from alerts.store import AlertStore
from finpulse.context import settings_from, tool
from finpulse.contracts import AlertState, utcnow

alerts_app = typer.Typer(help="Negative-news spike alerts.", no_args_is_help=True)
silence_app = typer.Typer(help="Silence alerts by matcher and time range.", no_args_is_help=True)
alerts_app.add_typer(silence_app, name="silence")


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")


def _store(ctx: typer.Context) -> AlertStore:
    return AlertStore(settings_from(ctx).alerts.state_db)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _zone(name: str) -> tzinfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return UTC if name.upper() == "UTC" else ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise typer.BadParameter(f"unknown time zone {name!r} (e.g. UTC, Europe/Berlin)") from None


@alerts_app.command()
def backtest(
    input: Annotated[Path, typer.Option("--input", "-i", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o")],
    detector: Annotated[
        str | None,
        typer.Option(
            help="registered detector; default by columns: value → range, "
            "negative,total → beta_binomial"
        ),
    ] = None,
    param: Annotated[list[str] | None, typer.Option(help="detector parameter k=v")] = None,
    tz: Annotated[str, typer.Option(help="zone of timestamps written without one")] = "UTC",
    labels: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="NAB combined_windows.json: adds NAB score, windows, false starts, PNG",
        ),
    ] = None,
) -> None:
    """Replay a CSV series through a detector; prints a JSON summary with rows/second."""
    from alerts.backtest import backtest as run_backtest
    from alerts.backtest import parse_params

    started = time.perf_counter()
    try:
        summary = run_backtest(input, out, detector, parse_params(param or []), _zone(tz), labels)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    elapsed = time.perf_counter() - started
    summary.update(seconds=round(elapsed, 3), rows_per_s=round(summary["rows"] / elapsed))
    typer.echo(json.dumps(summary))


@alerts_app.command()
def evaluate(
    out_dir: Annotated[Path, typer.Option("--out-dir")] = Path("var/alerts-eval"),
    scale: Annotated[float, typer.Option(help="fraction of the default series count")] = 1.0,
    seed: int = 0,
    workers: int = 2,
    calibration: Annotated[
        Path | None,
        typer.Option(
            help="matched-threshold cache, recomputed when stale; default: the committed one "
            "for seed 0 at scale 1, else one in --out-dir"
        ),
    ] = None,
    real: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            file_okay=False,
            help="a folder in NAB's layout: every detector's real-data results too",
        ),
    ] = None,
    category: Annotated[str, typer.Option(help="NAB category under --real")] = "realTweets",
) -> None:
    """Detectors vs the ElastAlert-style ratio rule on simulated labelled series, at their
    default thresholds and at thresholds matched to the ratio rule's false-alert rate; with
    ``--real``, every detector at its defaults on real labelled series beside the published
    NAB detectors."""
    simulated = tool("alerts.evaluate")
    real_report = None
    if real is not None:
        realdata = tool("alerts.realdata")
        try:
            real_report = realdata.evaluate_real(real, category)
        except ValueError as exc:
            _fail(str(exc))
    if calibration is None:
        committed = seed == 0 and scale == 1.0
        default = out_dir / f"calibration-{seed}-{scale:g}.json"
        calibration = simulated.CALIBRATION if committed else default
    results = simulated.evaluate(scale=scale, seed=seed, workers=workers, calibration=calibration)
    typer.echo(simulated.table(results))
    json_path, png_path = simulated.write_report(results, out_dir, seed)
    typer.echo(f"wrote {json_path} and {png_path}")
    if real_report is not None:
        typer.echo("\n" + realdata.real_table(real_report))
        real_path = out_dir / f"real-{category}.json"
        real_path.write_text(json.dumps(real_report, indent=2))
        typer.echo(f"wrote {real_path}")


@alerts_app.command("list")
def list_alerts(
    ctx: typer.Context,
    firing: Annotated[bool, typer.Option("--firing", help="only firing alerts")] = False,
    limit: int = 50,
) -> None:
    """Alerts newest first (history), or only the firing ones."""
    store = _store(ctx)
    for rec in store.list_alerts(AlertState.FIRING if firing else None, limit=limit):
        a = rec.alert
        ack = f" acked by {rec.acked_by}" if rec.acknowledged else ""
        typer.echo(
            f"{a.id}  {a.state:<8} {a.severity:<8} {a.rule} {a.scope}:{a.key} "
            f"score={a.score:.1f} started={a.started_at:%Y-%m-%dT%H:%MZ}{ack}"
        )


@alerts_app.command()
def ack(
    ctx: typer.Context,
    alert_id: str,
    by: Annotated[str, typer.Option("--by")],
    comment: str = "",
) -> None:
    """Acknowledge an alert: no more repeat notifications for it."""
    try:
        rec = _store(ctx).acknowledge(alert_id, by, comment)
    except KeyError as exc:
        _fail(str(exc.args[0]))
    typer.echo(f"acknowledged {rec.alert.id} by {rec.acked_by}")


def _duration(text: str) -> timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return timedelta(seconds=float(text[:-1]) * units[text[-1]])
    except (KeyError, ValueError, IndexError):
        raise typer.BadParameter(f"duration {text!r} must look like 30m, 2h or 1d") from None


@silence_app.command("add")
def silence_add(
    ctx: typer.Context,
    matchers: Annotated[list[str], typer.Argument(help="e.g. scope=ticker key=~AAPL|MSFT")],
    duration: Annotated[str, typer.Option("--for", help="30m, 2h, 1d")] = "2h",
    comment: str = "",
    by: Annotated[str, typer.Option("--by")] = "",
) -> None:
    """Silence matching alerts from now for a duration."""
    from pydantic import ValidationError

    from alerts.silences import Silence

    now = utcnow()
    try:
        silence = Silence(
            matchers=matchers,
            starts_at=now,
            ends_at=now + _duration(duration),
            comment=comment,
            created_by=by,
        )
    except ValidationError as exc:
        _fail(exc.errors()[0]["msg"].removeprefix("Value error, "))
    _store(ctx).add_silence(silence)
    typer.echo(f"{silence.id} until {silence.ends_at:%Y-%m-%dT%H:%M:%SZ}")


@silence_app.command("list")
def silence_list(
    ctx: typer.Context, all_: Annotated[bool, typer.Option("--all", help="include expired")] = False
) -> None:
    """Active silences (or all of them)."""
    for s in _store(ctx).list_silences(None if all_ else utcnow()):
        typer.echo(
            f"{s.id}  {' '.join(s.matchers)}  {s.starts_at:%Y-%m-%dT%H:%MZ} → "
            f"{s.ends_at:%Y-%m-%dT%H:%MZ}  {s.created_by} {s.comment}".rstrip()
        )


@silence_app.command("rm")
def silence_rm(ctx: typer.Context, silence_id: str) -> None:
    """Delete a silence."""
    if not _store(ctx).delete_silence(silence_id):
        _fail(f"no silence with id {silence_id!r}")
    typer.echo(f"deleted {silence_id}")
