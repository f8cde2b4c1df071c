"""Settings of the classifier, its training, its registry and the scorer (section ``[model]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from model.labels import DEFAULT_DESCRIPTIONS

DEFAULT_DATA_FILES = {
    "topic": {
        "train": "twitter-fin-topic/topic_train.csv",
        "valid": "twitter-fin-topic/topic_valid.csv",
    },
    "sentiment": {
        "train": "twitter-fin-sentiment/sent_train.csv",
        "valid": "twitter-fin-sentiment/sent_valid.csv",
    },
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainSettings(_Section):
    """Hyper-parameters; each model's ``model.json`` records the ones it was trained with."""

    epochs: int = Field(default=5, ge=1)
    batch_size: int = Field(default=32, ge=1)
    learning_rate: float = Field(default=1.5e-4, gt=0)
    # Each encoder layer below the top learns at layer_decay x the rate of the one above.
    layer_decay: float = Field(default=0.85, gt=0, le=1)
    head_learning_rate: float = Field(default=1e-3, gt=0)
    warmup_ratio: float = Field(default=0.06, ge=0, lt=1)
    weight_decay: float = Field(default=0.01, ge=0)
    label_smoothing: float = Field(default=0.1, ge=0, lt=1)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    patience: int = Field(default=2, ge=1)
    # Multiplier of each task's loss (task -> weight, default 1).
    task_weights: dict[Literal["topic", "sentiment"], float] = Field(default_factory=dict)
    # Class weight = (n / count) ** power, normalised to mean 1: 0 = none, 1 = fully balanced.
    class_weight_power: float = Field(default=0.5, ge=0, le=1)
    # After training, this share of the class weights' log is taken off the head biases:
    # weighted training learns p(c|x) * w_c; 1 gives back calibrated posteriors.
    prior_correction: float = Field(default=1.0, ge=0, le=1)
    # Share of each train file held out (by text hash) for early stopping.
    dev_fraction: float = Field(default=0.1, gt=0, lt=1)
    max_steps_per_epoch: int | None = Field(default=None, ge=1)
    # `full` / `lora`: stop training after this many minutes (at the next step), keep the
    # best state evaluated so far: a run that must end in time on a slow or busy CPU.
    max_train_minutes: float | None = Field(default=None, gt=0)
    # Read every URL as the one word "http": a shortened link (t.co/...) is a random hash of
    # ~13 word pieces, a third of a tweet's tokens. Saved in the model's tokenizer.json, so
    # its scorer applies it too; models trained without it are scored without it.
    replace_urls: bool = True
    # Distillation (`full`): a model of the registry ("champion", a version or a path)
    # labels every text for the task it has no label for, so each text trains both heads
    # (soft targets, times teacher_weight). None: each text trains its own task's head only.
    # A larger teacher (bge-small) lifted MiniLM's sentiment macro-F1 0.846 -> 0.857.
    teacher: str | None = None
    teacher_weight: float = Field(default=1.0, gt=0)
    # The word-embedding matrix is half of MiniLM's weights: freezing it halves optimizer work.
    # Sentiment on the validation split, frozen, 5 epochs: 0.875 / 0.834 (acc / macro-F1),
    # 0.887 / 0.848 with the prior correction applied afterwards; trained, 6 epochs, with the
    # correction: 0.879 / 0.840. Not worth the extra work.
    freeze_word_embeddings: bool = True
    # auto: mixed bfloat16 on a GPU or a CPU with AMX-BF16 (about 2x faster there), else float32.
    precision: Literal["auto", "float32", "bfloat16"] = "auto"
    # `head` method: softmax regression on frozen vectors takes larger steps than fine-tuning.
    head_epochs: int = Field(default=40, ge=1)
    probe_learning_rate: float = Field(default=3e-3, gt=0)
    # `lora` method: adapters of this rank on every attention and feed-forward dense, scaled
    # by alpha / rank; adapters, biases, LayerNorms and heads all learn at lora_learning_rate.
    lora_rank: int = Field(default=16, ge=1)
    lora_alpha: float = Field(default=32.0, gt=0)
    lora_learning_rate: float = Field(default=1e-3, gt=0)
    seed: int = 13


class ZeroShotSettings(_Section):
    """Label descriptions (zero-shot) and examples per label (few-shot), keyed task -> label."""

    descriptions: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {t: dict(d) for t, d in DEFAULT_DESCRIPTIONS.items()}
    )
    examples: dict[str, dict[str, list[str]]] = Field(default_factory=dict)
    # Labels without configured examples take this many from the train files.
    k: int = Field(default=8, ge=1)
    temperature: float = Field(default=0.05, gt=0)


class RetrainSettings(_Section):
    method: Literal["full", "lora", "head", "zero-shot", "few-shot"] = "full"
    # Share of each validation file (by text hash) that champion and challenger are compared on.
    holdout_fraction: float = Field(default=0.5, gt=0, le=1)
    # The challenger is promoted when its score >= champion's - tolerance.
    tolerance: float = Field(default=0.0, ge=0)


class ModelSettings(_Section):
    registry_dir: Path = Path("models")
    # While the registry names no champion, the model shipped in the package is champion
    # (a fresh install scores with no training step); False: no champion until one is promoted.
    shipped_model: bool = True
    base_model: str | None = None  # an HF-format directory; None = packaged MiniLM-L6
    max_length: int = Field(default=64, ge=8, le=512)
    batch_size: int = Field(default=64, ge=1)  # scoring batch on a CPU
    gpu_batch_size: int = Field(default=1024, ge=1)  # scoring batch on a GPU
    # Batches scored at once on a CPU, one op thread each; 0 = one per usable core (a
    # container's CPU quota counts), 1 = one batch on all cores (TensorFlow's default).
    cpu_parallel_batches: int = Field(default=0, ge=0)
    # Texts longer than this (characters) are refused by `finpulse score` with an error record.
    max_text_chars: int = Field(default=20_000, ge=1)
    # auto: mixed float16 on a GPU, mixed bfloat16 on a CPU with AMX-BF16 or AVX-512-BF16,
    # else float32.
    precision: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # Runtime of the scorer (model.device.choose_path). auto: ONNX Runtime int8 on a CPU with
    # VNNI and no AMX (2.0-2.1x TensorFlow float32, under 1 % of labels move), else TensorFlow
    # (bfloat16 on AMX); onnx: ONNX Runtime fp32 (TensorFlow's probabilities, no faster);
    # tensorflow; onnx-int8. A precision other than auto means TensorFlow in it.
    scoring_path: Literal["auto", "tensorflow", "onnx", "onnx-int8"] = "auto"
    data_files: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {t: dict(s) for t, s in DEFAULT_DATA_FILES.items()}
    )
    train: TrainSettings = TrainSettings()
    zero_shot: ZeroShotSettings = ZeroShotSettings()
    retrain: RetrainSettings = RetrainSettings()
