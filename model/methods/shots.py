"""``zero-shot`` and ``few-shot``: nothing is trained, the heads are cosine similarities.

Zero-shot heads are the embedded label descriptions (``[model.zero_shot.descriptions]``),
few-shot heads the centroids of a few embedded examples per label, each divided by the
temperature.
"""

from __future__ import annotations

import numpy as np

from model.labels import TASKS
from model.methods.base import Context, Outcome, embed_all, method


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-6)


def _cosine_heads(ctx: Context, prototypes: dict[str, np.ndarray]) -> None:
    scale = 1.0 / ctx.settings.zero_shot.temperature
    ctx.network.set_head_weights(
        {
            **{
                f"{t}_kernel": (_unit(p) * scale).T.astype(np.float32)
                for t, p in prototypes.items()
            },
            **{f"{t}_bias": np.zeros(len(p), np.float32) for t, p in prototypes.items()},
        }
    )


@method("zero-shot", normalize=True)
def fit_zero_shot(ctx: Context) -> Outcome:
    descriptions = ctx.settings.zero_shot.descriptions
    groups = {t: [descriptions[t][name] for name in ctx.labels[t]] for t in TASKS}
    _cosine_heads(ctx, embed_all(ctx, groups))
    return Outcome(notes={"descriptions": {t: descriptions[t] for t in TASKS}})


@method("few-shot", normalize=True)
def fit_few_shot(ctx: Context) -> Outcome:
    """Centroids of configured examples; labels without any take k from the train data."""
    zs = ctx.settings.zero_shot
    rng = np.random.default_rng(ctx.settings.train.seed)
    groups, used = {}, {}
    for t in TASKS:
        configured = zs.examples.get(t, {})
        for name in ctx.labels[t]:
            examples = list(configured.get(name, []))
            if not examples:
                pool = [
                    x for x, y in zip(ctx.fit[t].texts, ctx.fit[t].labels, strict=True) if y == name
                ]
                if pool:
                    examples = list(rng.choice(pool, size=min(zs.k, len(pool)), replace=False))
                else:  # no example anywhere: fall back to the label's description
                    examples = [zs.descriptions[t][name]]
            groups[f"{t}/{name}"] = examples
            used.setdefault(t, {})[name] = examples
    vec = embed_all(ctx, groups)
    prototypes = {
        t: np.stack([_unit(vec[f"{t}/{n}"]).mean(axis=0) for n in ctx.labels[t]]) for t in TASKS
    }
    _cosine_heads(ctx, prototypes)
    return Outcome(notes={"examples": used})
