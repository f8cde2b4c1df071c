"""Classification metrics of one task: accuracy, macro-F1, per-class P/R/F1, confusion.

>>> import numpy as np
>>> m = task_metrics(["a", "b", "b"], np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), ["a", "b"])
>>> round(m["accuracy"], 3), m["confusion"]
(0.667, [[1, 0], [1, 1]])
"""

from __future__ import annotations

from typing import Any

import numpy as np


def task_metrics(y_true: list[str], probs: np.ndarray, labels: list[str]) -> dict[str, Any]:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    index = {name: i for i, name in enumerate(labels)}
    missing = sorted({y for y in y_true if y not in index})
    if missing:
        raise ValueError(f"labels {missing} are not among the model's labels {labels}")
    truth = np.array([index[y] for y in y_true])
    pred = probs.argmax(axis=1)
    ids = list(range(len(labels)))
    p, r, f, s = precision_recall_fscore_support(truth, pred, labels=ids, zero_division=0)
    present = s > 0  # macro over the classes the data holds
    return {
        "n": len(truth),
        "accuracy": float((truth == pred).mean()),
        "macro_f1": float(f[present].mean()),
        "per_class": {
            name: {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(s[i]),
            }
            for i, name in enumerate(labels)
        },
        "labels": labels,
        "confusion": confusion_matrix(truth, pred, labels=ids).tolist(),
    }


def headline(metrics: dict[str, Any]) -> dict[str, float]:
    """Just the two numbers per task a table or a decision needs."""
    return {
        task: {"accuracy": round(m["accuracy"], 4), "macro_f1": round(m["macro_f1"], 4)}
        for task, m in metrics.items()
    }


def combined_score(metrics: dict[str, Any]) -> float:
    """Mean macro-F1 over the tasks: what early stopping and retrain decisions compare."""
    return float(np.mean([m["macro_f1"] for m in metrics.values()]))
