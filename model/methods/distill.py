"""Training targets, with distillation: a teacher model labels each text for the task it lacks.

The two data sets label different tweets (a topic tweet has no sentiment label and the
reverse), so without a teacher each text trains one head. With ``train.teacher`` set, the
teacher scores every fit text first and its probabilities train the other head.
"""

from __future__ import annotations

import numpy as np

from model.labels import TASKS
from model.methods.base import Context, one_hot


def teacher_probs(ctx: Context) -> tuple[str, dict[str, dict[str, np.ndarray]]]:
    """The teacher's version and probabilities: fit texts of task -> other task -> rows."""
    from model.scorer import Scorer

    # One batch at a time: a parallel scorer would pin TensorFlow to one op thread, and
    # the student trains in this process next.
    teacher = Scorer.load(
        ctx.settings.train.teacher, ctx.settings.model_copy(update={"cpu_parallel_batches": 1})
    )
    for t in TASKS:
        if teacher.labels.get(t) != ctx.labels[t]:
            raise ValueError(
                f"teacher {teacher.version} predicts other {t} labels than this model trains"
            )
    out = {}
    try:
        for task in TASKS:
            probs = teacher.predict_proba(
                ctx.fit[task].texts, progress=ctx.bar(f"teacher {teacher.version} on {task} texts")
            )
            out[task] = {t: probs[t] for t in TASKS if t != task}
    finally:
        teacher.close()
    return teacher.version, out


def targets(ctx: Context) -> tuple[dict[str, np.ndarray], str | None]:
    """Per-class target mass of every fit text (the tasks' texts in order), for each head,
    and the teacher's version.

    A text's own task gets its one-hot gold label; the other task gets the teacher's
    probabilities times ``teacher_weight`` where a teacher is set, else zeros (no loss).
    """
    tr = ctx.settings.train
    teacher, soft = teacher_probs(ctx) if tr.teacher else (None, None)
    ys: dict[str, list[np.ndarray]] = {t: [] for t in TASKS}
    for task in TASKS:
        data = ctx.fit[task]
        for t in TASKS:
            if t == task:
                ys[t].append(one_hot(data, ctx.labels[t]))
            elif soft is not None:
                ys[t].append(soft[task][t].astype(np.float32) * tr.teacher_weight)
            else:
                ys[t].append(np.zeros((len(data), len(ctx.labels[t])), np.float32))
    return {t: np.concatenate(v) for t, v in ys.items()}, teacher
