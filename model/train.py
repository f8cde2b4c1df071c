"""Training: four ways to adapt the pretrained encoder, registered by name.

- ``full``: fine-tune everything (AdamW, warm-up + linear decay, layer-wise learning-rate
  decay, label smoothing, class weights, early stopping on dev macro-F1);
- ``head``: freeze the encoder, embed every text once, train the two linear heads;
- ``zero-shot``: heads are the embedded label descriptions (cosine similarity);
- ``few-shot``: heads are the centroids of a few embedded examples per label.

Each sample trains only the head of the task it is labeled for, unless a teacher model is
set (``train.teacher``): then the teacher's probabilities train the other head. The dev set
for early stopping is a fixed, hash-chosen slice of the train files; the validation files
are only used for the report.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
from tokenizers import Tokenizer

from model import lora
from model.artifact import finalize, save_weights
from model.config import ModelSettings
from model.data import (
    Labeled,
    content_sha256,
    holdout_mask,
    load_feedback,
    load_split,
    split_source,
)
from model.device import dtype_policy, gpu_available, training_policy
from model.encoder import (
    length_batches,
    load_backbone,
    load_tokenizer,
    pad,
    replace_urls,
    resolve_base,
    run_batched,
    tokenize,
)
from model.labels import LABELS, TASKS
from model.metrics import combined_score, headline, task_metrics
from model.network import Network, build_network, compile_forward
from model.registry import ModelInfo, Registry

log = logging.getLogger(__name__)


@dataclass
class TrainData:
    train: dict[str, Labeled]
    valid: dict[str, Labeled]
    # Provenance, saved in model.json (``data``): files and sha256 from load_train_data;
    # ``generated: True`` marks made-up rows (tests, never a champion).
    source: dict[str, Any] = field(default_factory=lambda: {"name": "in-memory rows"})


def load_train_data(
    settings: ModelSettings, data_dir: Path, feedback: Path | None = None
) -> TrainData:
    """The configured train/valid files, with feedback rows (if any) added to train."""
    files = settings.data_files
    train = load_split(data_dir, files, "train")
    source = {
        "name": "files",
        "generated": False,
        "train": split_source(data_dir, files, "train"),
        "valid": split_source(data_dir, files, "valid"),
    }
    if feedback is not None:
        for task, rows in load_feedback(feedback).items():
            train[task] = train[task] + rows
        source["feedback"] = {"file": str(feedback), "sha256": content_sha256(Path(feedback))}
    return TrainData(train, load_split(data_dir, files, "valid"), source)


@dataclass
class Context:
    settings: ModelSettings
    network: Network
    tokenizer: Tokenizer
    labels: dict[str, list[str]]
    fit: dict[str, Labeled]
    dev: dict[str, Labeled]
    valid: dict[str, Labeled]
    epochs: int
    progress: bool

    def bar(self, desc: str) -> str | None:
        return desc if self.progress else None


@dataclass
class Outcome:
    history: list[dict[str, float]] = field(default_factory=list)
    # Validation probabilities the method already has (saves a pass of the encoder).
    valid_probs: dict[str, np.ndarray] | None = None
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    fit: Callable[[Context], Outcome]
    normalize: bool  # cosine heads (zero/few-shot) or linear heads on raw pooled vectors
    trains_encoder: bool


METHODS: dict[str, Method] = {}


def method(name: str, *, normalize: bool = False, trains_encoder: bool = False) -> Callable:
    def register(fn: Callable[[Context], Outcome]) -> Callable[[Context], Outcome]:
        METHODS[name] = Method(fn, normalize, trains_encoder)
        return fn

    return register


# ---------------------------------------------------------------------------- losses, weights


def class_weights(labels: list[str], names: list[str], power: float) -> np.ndarray:
    """(n / count) ** power per class, mean 1 over the classes present; unseen classes get 1."""
    counts = np.array([labels.count(n) for n in names], dtype=np.float64)
    weights = np.ones(len(names))
    seen = counts > 0
    weights[seen] = (counts[seen].sum() / counts[seen]) ** power
    weights[seen] /= weights[seen].mean()
    return weights.astype(np.float32)


def _task_weights(ctx: Context) -> dict[str, np.ndarray]:
    """Class weights per task, from the rows actually trained on."""
    power = ctx.settings.train.class_weight_power
    return {t: class_weights(ctx.fit[t].labels, ctx.labels[t], power) for t in TASKS}


def _remove_prior(bias: np.ndarray, weights: np.ndarray, ctx: Context) -> np.ndarray:
    """The head bias less ``prior_correction`` x log(class weight).

    Class-weighted cross-entropy makes the heads estimate p(c|x) * w_c up to a constant;
    subtracting log w_c (post-hoc logit adjustment) restores p(c|x), which is what accuracy
    and the alert rates want, while training still got the weights' push on rare classes.
    """
    return bias - ctx.settings.train.prior_correction * np.log(weights)


class TaskLoss(keras.losses.Loss):
    """Label-smoothed, class-weighted cross-entropy against per-class target mass.

    ``y_true`` rows are one-hot for a gold label, a teacher's probabilities times
    ``teacher_weight`` for a distilled one, and zero for a text with neither (it adds 0).
    Summed over the batch's rows and divided by the whole batch size, so each task pulls in
    proportion to its share of the batch. Plain ``keras.ops``: any backend.
    """

    def __init__(self, class_weights: np.ndarray, smoothing: float, name: str | None = None):
        super().__init__(name=name, reduction="sum_over_batch_size")
        self.class_weights = np.asarray(class_weights, dtype=np.float32)
        self.smoothing = smoothing

    def call(self, y_true: Any, y_pred: Any) -> Any:
        ops = keras.ops
        n = len(self.class_weights)
        y = ops.cast(y_true, "float32")
        mass = ops.sum(y, axis=-1)
        dist = y / ops.expand_dims(ops.maximum(mass, 1e-9), -1)
        target = dist * (1.0 - self.smoothing) + self.smoothing / n
        log_p = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        ce = -ops.sum(target * log_p, axis=-1)
        w = ops.sum(dist * ops.convert_to_tensor(self.class_weights), axis=-1)
        return ce * w * mass


class LayerwiseAdamW(keras.optimizers.AdamW):
    """AdamW whose step for each variable is scaled by a multiplier (by variable path).

    One optimizer with per-variable rates (layer-wise decay, a faster head) is what lets
    Keras' own trainer, hence any backend, run the fine-tuning.
    """

    def __init__(self, multipliers: dict[str, float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.multipliers = multipliers
        self._scales: list[float] = []

    def build(self, variables: list) -> None:
        super().build(variables)
        self._scales = [self.multipliers.get(v.path, 1.0) for v in variables]

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> Any:
        # Backends hand over their native variable here; Adam finds its slots by index too.
        scale = self._scales[self._get_variable_index(variable)]
        return super().update_step(gradient, variable, learning_rate * scale)


def _jit() -> bool:
    """JAX needs XLA; on TensorFlow's CPU path XLA measured slower, and torch eager is fine."""
    return keras.backend.backend() == "jax"


def _one_hot(data: Labeled, names: list[str]) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    return np.eye(len(names), dtype=np.float32)[[index[y] for y in data.labels]]


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _dev_metrics(probs: dict[str, np.ndarray], ctx: Context) -> dict[str, dict]:
    return {t: task_metrics(ctx.dev[t].labels, probs[t], ctx.labels[t]) for t in ctx.dev}


def _history_row(epoch: int, loss: float, dev: dict[str, dict], started: float) -> dict:
    row = {"epoch": epoch, "train_loss": round(loss, 5), "seconds": round(time.time() - started)}
    for task, m in dev.items():
        row[f"dev_{task}_accuracy"] = round(m["accuracy"], 4)
        row[f"dev_{task}_macro_f1"] = round(m["macro_f1"], 4)
    row["dev_score"] = round(combined_score(dev), 4)
    return row


class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate: linear warm-up to ``peak``, then linear decay to zero."""

    def __init__(self, peak: float, warmup: int, total: int) -> None:
        self.peak, self.warmup, self.total = peak, warmup, total

    def __call__(self, step: Any) -> Any:
        step = keras.ops.cast(step, "float32")
        up = self.peak * (step + 1.0) / max(self.warmup, 1)
        remaining = (self.total - step) / max(self.total - self.warmup, 1)
        return keras.ops.where(
            step < self.warmup, up, self.peak * keras.ops.maximum(0.0, remaining)
        )

    def get_config(self) -> dict:
        return {"peak": self.peak, "warmup": self.warmup, "total": self.total}


# ---------------------------------------------------------------------------- full


def _layer_of(path: str) -> int:
    """Encoder depth of a variable: 0 = embeddings, 1..L = transformer layers."""
    match = re.search(r"transformer_layer_(\d+)", path)
    return int(match.group(1)) + 1 if match else 0


def _teacher_probs(ctx: Context) -> tuple[str, dict[str, dict[str, np.ndarray]]]:
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


def _targets(ctx: Context) -> tuple[dict[str, np.ndarray], str | None]:
    """Per-class target mass of every fit text (the tasks' texts in order), for each head,
    and the teacher's version.

    A text's own task gets its one-hot gold label; the other task gets the teacher's
    probabilities times ``teacher_weight`` where a teacher is set, else zeros (no loss).
    """
    tr = ctx.settings.train
    teacher, soft = _teacher_probs(ctx) if tr.teacher else (None, None)
    ys: dict[str, list[np.ndarray]] = {t: [] for t in TASKS}
    for task in TASKS:
        data = ctx.fit[task]
        for t in TASKS:
            if t == task:
                ys[t].append(_one_hot(data, ctx.labels[t]))
            elif soft is not None:
                ys[t].append(soft[task][t].astype(np.float32) * tr.teacher_weight)
            else:
                ys[t].append(np.zeros((len(data), len(ctx.labels[t])), np.float32))
    return {t: np.concatenate(v) for t, v in ys.items()}, teacher


def _fine_tune(
    ctx: Context, peak: float, multipliers: dict[str, float], notes: dict[str, Any]
) -> Outcome:
    """Train the network's trainable variables (AdamW, warm-up + linear decay, each
    variable's step scaled by its multiplier), early-stopped on the dev score."""
    tr, network = ctx.settings.train, ctx.network
    texts = [x for task in TASKS for x in ctx.fit[task].texts]
    y, teacher = _targets(ctx)
    tokens = tokenize(ctx.tokenizer, texts)
    lengths = np.array([len(x) for x in tokens])
    steps = math.ceil(len(texts) / tr.batch_size)
    if tr.max_steps_per_epoch:
        steps = min(steps, tr.max_steps_per_epoch)
    total = steps * ctx.epochs
    warmup = int(tr.warmup_ratio * total)
    optimizer = LayerwiseAdamW(
        multipliers,
        learning_rate=WarmupLinearDecay(peak, warmup, total),
        weight_decay=tr.weight_decay,
        clipnorm=1.0,
    )
    model = network.model
    weights = _task_weights(ctx)
    model.compile(
        optimizer=optimizer,
        loss={t: TaskLoss(weights[t], tr.label_smoothing, name=f"{t}_loss") for t in TASKS},
        loss_weights={t: tr.task_weights.get(t, 1.0) for t in TASKS},
        jit_compile=_jit(),
    )
    forward = compile_forward(model, softmax=True)
    dev_tokens = {t: tokenize(ctx.tokenizer, ctx.dev[t].texts) for t in TASKS}
    rng = np.random.default_rng(tr.seed)
    history, best, best_weights, stale = [], -1.0, None, 0
    started = time.time()
    deadline = started + 60 * tr.max_train_minutes if tr.max_train_minutes else None
    for epoch in range(1, ctx.epochs + 1):
        batches = length_batches(lengths, tr.batch_size, rng)
        if _jit():  # one compiled shape: a short last batch would cost a second compile
            batches = [b for b in batches if len(b) == tr.batch_size] or batches
        batches = batches[:steps]
        if ctx.progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc=f"epoch {epoch}/{ctx.epochs}", unit="step", mininterval=5)
        losses = []
        for idx in batches:
            if deadline is not None and time.time() > deadline:
                notes["stopped_at"] = {"epoch": epoch, "step": len(losses)}
                break
            ids, mask = pad([tokens[i] for i in idx], ctx.settings.max_length, full=_jit())
            logs = model.train_on_batch(
                {"token_ids": ids, "padding_mask": mask},
                {t: y[t][idx] for t in TASKS},
                return_dict=True,
            )
            losses.append(float(logs["loss"]))
            if ctx.progress and len(losses) % 20 == 0:
                batches.set_postfix(loss=f"{np.mean(losses[-100:]):.4f}")
        probs = {
            t: run_batched(
                forward,
                dev_tokens[t],
                batch_size=ctx.settings.batch_size,
                max_length=ctx.settings.max_length,
            )[t]
            for t in TASKS
        }
        loss = float(np.mean(losses)) if losses else float("nan")
        row = _history_row(epoch, loss, _dev_metrics(probs, ctx), started)
        history.append(row)
        log.info("epoch %d: %s", epoch, row)
        if ctx.progress:
            print(f"epoch {epoch}: " + ", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        if row["dev_score"] > best:
            best, best_weights, stale = row["dev_score"], model.get_weights(), 0
        else:
            stale += 1
            if stale >= tr.patience:
                break
        if "stopped_at" in notes:  # out of time: the best state so far is the model
            break
    model.set_weights(best_weights)
    heads = network.head_weights()
    for t in TASKS:
        heads[f"{t}_bias"] = _remove_prior(heads[f"{t}_bias"], weights[t], ctx)
    network.set_head_weights(heads)
    best_epoch = max(history, key=lambda r: r["dev_score"])["epoch"]
    notes |= {"best_epoch": best_epoch, "steps_per_epoch": steps, "teacher": teacher}
    return Outcome(history=history, notes=notes)


@method("full", trains_encoder=True)
def fit_full(ctx: Context) -> Outcome:
    tr, network = ctx.settings.train, ctx.network
    # BERT's pooler is unused by mean pooling; the word embeddings are frozen by choice.
    for layer in network.backbone.layers:
        if layer.name == "pooled_dense" or (
            tr.freeze_word_embeddings and layer.name == "token_embedding"
        ):
            layer.trainable = False
    # Layer-wise learning-rate decay: each encoder depth below the top at layer_decay x.
    num_layers = getattr(network.backbone, "num_layers", 0)
    backbone_ids = {id(v) for v in network.backbone.weights}
    multipliers = {
        v.path: (
            tr.layer_decay ** (num_layers - _layer_of(v.path))
            if id(v) in backbone_ids
            else tr.head_learning_rate / tr.learning_rate
        )
        for v in network.model.trainable_variables
    }
    return _fine_tune(ctx, tr.learning_rate, multipliers, {})


@method("lora", trains_encoder=True)
def fit_lora(ctx: Context) -> Outcome:
    """Adapters (plus biases, LayerNorms and heads) at one rate; the base kernels stay."""
    tr = ctx.settings.train
    adapted = lora.enable(ctx.network.backbone, tr.lora_rank, tr.lora_alpha)
    if not adapted:
        raise ValueError("the base encoder has no layers LoRA knows how to adapt")
    trainable = sum(int(np.prod(v.shape)) for v in ctx.network.model.trainable_variables)
    notes = {"lora": {"rank": tr.lora_rank, "alpha": tr.lora_alpha, "layers": adapted}}
    notes["trainable_parameters"] = trainable
    return _fine_tune(ctx, tr.lora_learning_rate, {}, notes)


# ---------------------------------------------------------------------------- head


def _embed_all(ctx: Context, groups: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Pooled vectors of several text groups in one pass of the (frozen) encoder."""
    names, texts = [], []
    for name, group in groups.items():
        names.append((name, len(texts), len(texts) + len(group)))
        texts += group
    vectors = run_batched(
        compile_forward(ctx.network.embedder),
        tokenize(ctx.tokenizer, texts),
        batch_size=ctx.settings.gpu_batch_size if gpu_available() else ctx.settings.batch_size,
        max_length=ctx.settings.max_length,
        progress=ctx.bar(f"embedding {len(texts)} texts"),
    )
    return {name: vectors[a:b] for name, a, b in names}


def _fit_linear(
    x: np.ndarray,
    y: np.ndarray,
    x_dev: np.ndarray,
    dev_labels: list[str],
    names: list[str],
    ctx: Context,
    weights: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, list[tuple[float, dict]]]:
    """Softmax regression by Adam on fixed vectors; keeps the epoch with the best dev F1."""
    tr = ctx.settings.train
    rng = np.random.default_rng(tr.seed)
    init = keras.initializers.RandomNormal(stddev=0.01, seed=tr.seed)
    probe = keras.Sequential(
        [keras.Input((x.shape[1],)), keras.layers.Dense(len(names), kernel_initializer=init)]
    )
    probe.compile(
        optimizer=keras.optimizers.Adam(learning_rate=tr.probe_learning_rate),
        loss=TaskLoss(weights, tr.label_smoothing),
        jit_compile=_jit(),
    )
    curve, best, best_wb = [], -1.0, None
    for _ in range(tr.head_epochs):
        order = rng.permutation(len(x))
        # Equal-sized batches (the remainder is dropped): one compiled shape on any backend.
        size = min(128, len(x))
        losses = [
            float(probe.train_on_batch(x[b], y[b], return_dict=True)["loss"])
            for b in order[: len(x) // size * size].reshape(-1, size)
        ]
        kernel, bias = probe.layers[-1].get_weights()
        probs = _softmax(x_dev @ kernel + bias)
        m = task_metrics(dev_labels, probs, names)
        curve.append((float(np.mean(losses)), m))
        if m["macro_f1"] > best:
            best, best_wb = m["macro_f1"], (kernel, bias)
    return best_wb[0], best_wb[1], curve


@method("head")
def fit_head(ctx: Context) -> Outcome:
    tr = ctx.settings.train
    groups = {}
    for t in TASKS:
        groups[f"fit/{t}"], groups[f"dev/{t}"] = ctx.fit[t].texts, ctx.dev[t].texts
        groups[f"valid/{t}"] = ctx.valid[t].texts
    started = time.time()
    vec = _embed_all(ctx, groups)
    embed_seconds = time.time() - started
    heads, curves, valid_probs = {}, {}, {}
    task_weights = _task_weights(ctx)
    for t in TASKS:
        names = ctx.labels[t]
        kernel, bias, curves[t] = _fit_linear(
            vec[f"fit/{t}"],
            _one_hot(ctx.fit[t], names),
            vec[f"dev/{t}"],
            ctx.dev[t].labels,
            names,
            ctx,
            task_weights[t],
        )
        bias = _remove_prior(bias, task_weights[t], ctx)
        heads[f"{t}_kernel"], heads[f"{t}_bias"] = kernel, bias
        valid_probs[t] = _softmax(vec[f"valid/{t}"] @ kernel + bias)
    ctx.network.set_head_weights(heads)
    history = [
        _history_row(
            e + 1,
            sum(curves[t][e][0] for t in TASKS),
            {t: curves[t][e][1] for t in TASKS},
            started,
        )
        for e in range(tr.head_epochs)
    ]
    return Outcome(history, valid_probs, {"embed_seconds": round(embed_seconds, 1)})


# ---------------------------------------------------------------------------- zero/few-shot


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
    _cosine_heads(ctx, _embed_all(ctx, groups))
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
    vec = _embed_all(ctx, groups)
    prototypes = {
        t: np.stack([_unit(vec[f"{t}/{n}"]).mean(axis=0) for n in ctx.labels[t]]) for t in TASKS
    }
    _cosine_heads(ctx, prototypes)
    return Outcome(notes={"examples": used})


# ---------------------------------------------------------------------------- driver


def method_labels(name: str, settings: ModelSettings) -> dict[str, list[str]]:
    """The label sets a model of this method predicts (zero-shot: the described labels)."""
    if name == "zero-shot":
        return {t: list(settings.zero_shot.descriptions[t]) for t in TASKS}
    if name == "few-shot":
        return {t: list(settings.zero_shot.examples.get(t) or LABELS[t]) for t in TASKS}
    return {t: list(LABELS[t]) for t in TASKS}


def train_model(
    method_name: str,
    settings: ModelSettings,
    data: TrainData,
    *,
    epochs: int | None = None,
    progress: bool = True,
    extra_meta: dict[str, Any] | None = None,
) -> ModelInfo:
    """Train with one method, evaluate on ``data.valid`` and write a new registry version."""
    if method_name not in METHODS:
        raise ValueError(f"unknown method {method_name!r}; expected one of {', '.join(METHODS)}")
    spec = METHODS[method_name]
    started = time.time()
    tr = settings.train
    base = resolve_base(settings.base_model)
    tokenizer = load_tokenizer(base, settings.max_length)
    if tr.replace_urls:
        replace_urls(tokenizer)
    # Methods that only run the encoder embed at the scorer's precision.
    dtype = (
        training_policy(tr.precision) if spec.trains_encoder else dtype_policy(settings.precision)
    )
    backbone = load_backbone(base, dropout=tr.dropout, dtype=dtype)
    backbone.trainable = spec.trains_encoder
    labels = method_labels(method_name, settings)
    network = build_network(backbone, labels, dropout=tr.dropout, normalize=spec.normalize)
    fit, dev = {}, {}
    for t in TASKS:
        held = holdout_mask(data.train[t].texts, tr.dev_fraction, salt="dev")
        if held.all() or not held.any():  # too little data to split: use it for both
            fit[t], dev[t] = data.train[t], data.train[t]
        else:
            fit[t], dev[t] = data.train[t].subset(~held), data.train[t].subset(held)
    ctx = Context(
        settings,
        network,
        tokenizer,
        labels,
        fit,
        dev,
        data.valid,
        epochs or tr.epochs,
        progress,
    )
    outcome = spec.fit(ctx)
    train_seconds = time.time() - started

    probs = outcome.valid_probs
    if probs is None:
        forward = compile_forward(network.model, softmax=True)
        probs = {
            t: run_batched(
                forward,
                tokenize(tokenizer, data.valid[t].texts),
                batch_size=settings.batch_size,
                max_length=settings.max_length,
                progress=ctx.bar(f"evaluating {t}"),
            )[t]
            for t in TASKS
        }
    valid = {t: task_metrics(data.valid[t].labels, probs[t], labels[t]) for t in TASKS}

    from model.report import write_report

    path = Registry(settings.registry_dir).new_version_dir(method_name)
    adapter = method_name == "lora"
    save_weights(path, network, tokenizer, adapter=adapter)
    meta = {
        "method": method_name,
        "base_model": str(base),
        **({"base": lora.base_identity(base), "lora": outcome.notes["lora"]} if adapter else {}),
        "data": data.source,
        "labels": labels,
        "max_length": settings.max_length,
        "normalize": spec.normalize,
        "train_settings": tr.model_dump(),
        "train_dtype": dtype,
        "epochs": ctx.epochs,
        "train_rows": {t: len(fit[t]) for t in TASKS},
        "dev_rows": {t: len(dev[t]) for t in TASKS},
        "valid_rows": {t: len(data.valid[t]) for t in TASKS},
        "history": outcome.history,
        "notes": outcome.notes,
        "train_seconds": round(train_seconds, 1),
        **(extra_meta or {}),
    }
    metrics = {"valid": valid, "headline": headline(valid), "train_seconds": meta["train_seconds"]}
    write_report(path, meta, metrics)
    return finalize(path, meta, metrics)
