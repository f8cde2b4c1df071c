"""Training methods, registered by name in ``METHODS``: ``full`` and ``lora`` (finetune),
``head`` (head), ``zero-shot`` and ``few-shot`` (shots); a new method is one module here.

Each sample trains only the head of the task it is labeled for, unless a teacher model is
set (``train.teacher``, :mod:`model.methods.distill`): then the teacher's probabilities
train the other head.
"""

from model.methods import finetune, head, shots  # noqa: F401  (importing registers them)
from model.methods.base import METHODS, Context, Method, Outcome, method

__all__ = ["METHODS", "Context", "Method", "Outcome", "method"]
