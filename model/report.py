"""A model version's evaluation report: confusion matrices, training curves, a model card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from model.data import describe

TARGETS = {  # (accuracy, macro-F1)
    "full": {"sentiment": (0.88, 0.85), "topic": (0.90, 0.85)},
    "lora": {"sentiment": (0.89, 0.86), "topic": (0.91, 0.90)},  # the shipped champion's
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_png(path: Path, task: str, metrics: dict[str, Any]) -> None:
    """Row-normalised confusion matrix (recall on the diagonal), counts in the cells."""
    plt = _plt()
    labels, counts = metrics["labels"], np.array(metrics["confusion"], dtype=float)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            if counts[i, j]:
                color = "white" if share[i, j] > 0.5 else "black"
                ax.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=6, color=color)
    ax.set_title(f"{task}: accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}")
    fig.colorbar(im, ax=ax, fraction=0.04, label="share of true class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def curves_png(path: Path, history: list[dict[str, float]]) -> None:
    plt = _plt()
    epochs = [r["epoch"] for r in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [r["train_loss"] for r in history], marker="o")
    left.set_title("train loss")
    left.set_xlabel("epoch")
    for key in sorted(k for k in history[0] if k.startswith("dev_") and k != "dev_score"):
        right.plot(epochs, [r[key] for r in history], marker=".", label=key.removeprefix("dev_"))
    right.set_title("dev metrics (early stopping: mean macro-F1)")
    right.set_xlabel("epoch")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def model_card(meta: dict[str, Any], metrics: dict[str, Any]) -> str:
    method = meta["method"]
    teacher = meta.get("notes", {}).get("teacher")
    base = meta.get("base")
    adapter = meta.get("lora")
    lines = [
        f"# Model card: {meta.get('version', '')} ({method})",
        "",
        f"- Base encoder: `{base['name']}` (weights sha256 `{base['sha256']}`)"
        if base
        else f"- Base encoder: `{meta['base_model']}`",
        *(
            [
                f"- LoRA adapter: rank {adapter['rank']}, alpha {adapter['alpha']}, on "
                f"{adapter['layers']} dense layers; merged into the base at load"
            ]
            if adapter
            else []
        ),
        *([f"- Teacher (distilled from): `{teacher}`"] if teacher else []),
        f"- Method: `{method}`; epochs run: {len(meta['history']) or 'n/a'}; "
        f"training time: {meta['train_seconds']} s",
        f"- Max length: {meta['max_length']} tokens; train rows {meta['train_rows']}, "
        f"dev rows (early stopping) {meta['dev_rows']}",
        "",
        "## Validation metrics",
        "",
        f"Measured on: {describe(meta.get('data'))}.",
        "",
        "| task | accuracy | macro-F1 | target accuracy | target macro-F1 | rows |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for task, m in metrics["valid"].items():
        target = TARGETS.get(method, {}).get(task)
        t_acc, t_f1 = (f"{target[0]:.2f}", f"{target[1]:.2f}") if target else ("-", "-")
        lines.append(
            f"| {task} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {t_acc} | {t_f1} | {m['n']} |"
        )
    for task, m in metrics["valid"].items():
        lines += ["", f"### {task}: per class", "", "| class | precision | recall | F1 | support |"]
        lines.append("|---|---:|---:|---:|---:|")
        for name, c in m["per_class"].items():
            cell = name.replace("|", "\\|")  # label names like "Energy | Oil"
            lines.append(
                f"| {cell} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} "
                f"| {c['support']} |"
            )
        lines += ["", f"![confusion {task}](confusion_{task}.png)"]
    if meta["history"]:
        lines += ["", "## Training curves", "", "![training curves](training_curves.png)"]
    return "\n".join(lines) + "\n"


def write_report(path: Path, meta: dict[str, Any], metrics: dict[str, Any]) -> None:
    meta = {**meta, "version": path.name}
    for task, m in metrics["valid"].items():
        confusion_png(path / f"confusion_{task}.png", task, m)
    if meta["history"]:
        curves_png(path / "training_curves.png", meta["history"])
    (path / "report.json").write_text(json.dumps(metrics["valid"], indent=2))
    (path / "MODEL_CARD.md").write_text(model_card(meta, metrics))
