"""Every training method on the tiny encoder: train, save, load, score, evaluate."""

import json

import numpy as np
import pytest

from model.data import Labeled, holdout_mask
from model.methods import Context, method
from model.methods.distill import targets
from model.methods.losses import TaskLoss, class_weights
from model.registry import Registry
from model.scorer import Scorer
from model.train import TrainData, train_model
from tools.model.tiny import tiny_settings, toy_rows, train_tiny_model


def _by_task(rows: list[dict]) -> dict[str, Labeled]:
    return {
        t: Labeled(
            t,
            [r["text"] for r in rows if r["task"] == t],
            [r["label"] for r in rows if r["task"] == t],
        )
        for t in ("topic", "sentiment")
    }


@pytest.mark.parametrize("method", ["full", "lora", "head", "zero-shot", "few-shot"])
def test_method_writes_a_loadable_version(tmp_path, method):
    info = train_tiny_model(tmp_path, method=method, promote=False)
    files = {p.name for p in info.path.iterdir()}
    weights = "adapter.safetensors" if method == "lora" else "encoder"
    assert {"model.json", "metrics.json", "heads.npz", "tokenizer.json", weights} <= files
    assert info.meta["data"]["generated"]  # toy rows say so
    assert {"confusion_topic.png", "confusion_sentiment.png", "MODEL_CARD.md"} <= files
    if method in ("full", "lora", "head"):
        assert "training_curves.png" in files and info.meta["history"]
    assert info.method == method
    for task in ("topic", "sentiment"):
        m = info.metrics["valid"][task]
        assert 0 <= m["accuracy"] <= 1 and set(m["per_class"]) == set(m["labels"])
    assert (tmp_path / "CHAMPION").exists() is False  # training alone promotes nothing

    scorer = Scorer.load(info.version, tiny_settings(tmp_path))
    preds = scorer.predict(["shares fall", "the fed says rates rise", "x" * 500])
    assert len(preds) == 3
    for p in preds:
        assert p.topic == max(p.topic_probs, key=p.topic_probs.get)
        assert sum(p.topic_probs.values()) == pytest.approx(1, abs=1e-3)
        assert set(p.sentiment_probs) == {"negative", "neutral", "positive"}
        assert p.sentiment in p.sentiment_probs
    data = Labeled("sentiment", ["shares fall loss weak", "rise beat"], ["negative", "positive"])
    assert scorer.evaluate(data)["n"] == 2


def test_few_shot_learns_the_toy_task(tiny_scorer):
    rows = [r for r in toy_rows(seed=1) if r["task"] == "sentiment"]
    data = Labeled("sentiment", [r["text"] for r in rows], [r["label"] for r in rows])
    assert tiny_scorer.evaluate(data)["accuracy"] > 0.8  # chance is 1/3


def test_full_training_reduces_loss(tmp_path):
    settings = tiny_settings(tmp_path)
    settings.train.max_steps_per_epoch = 12
    rows = toy_rows(n_per_label=4)
    by_task = _by_task(rows)
    info = train_model("full", settings, TrainData(by_task, by_task), epochs=3, progress=False)
    losses = [r["train_loss"] for r in info.meta["history"]]
    assert len(losses) >= 2 and losses[-1] < losses[0]
    card = (info.path / "MODEL_CARD.md").read_text()
    assert "| topic |" in card and "0.90" in card  # measured next to the targets
    assert json.loads((info.path / "report.json").read_text())["topic"]["n"] == len(
        by_task["topic"]
    )


def test_zero_shot_uses_configured_taxonomy(tmp_path):
    settings = tiny_settings(tmp_path)
    settings.zero_shot.descriptions["topic"] = {"rates": "fed rates", "oil": "energy oil"}
    data = Labeled("topic", ["fed rates rise", "oil energy"], ["rates", "oil"])
    sentiment = Labeled("sentiment", ["rise beat"], ["positive"])
    info = train_model(
        "zero-shot",
        settings,
        TrainData({"topic": data, "sentiment": sentiment}, {"topic": data, "sentiment": sentiment}),
        progress=False,
    )
    assert info.meta["labels"]["topic"] == ["rates", "oil"]
    pred = Scorer.load(info.version, settings).predict(["oil energy"])[0]
    assert set(pred.topic_probs) == {"rates", "oil"}


def test_a_method_name_is_registered_once():
    with pytest.raises(ValueError, match="'full' is already registered"):
        method("full")(lambda ctx: None)


def test_class_weights_favour_rare_classes():
    w = class_weights(["a"] * 90 + ["b"] * 10, ["a", "b", "c"], power=1.0)
    assert w[1] > w[0] and w[2] == 1.0
    assert np.allclose(class_weights(["a", "b"], ["a", "b"], power=0.0), 1.0)


def test_prior_correction_takes_the_class_weights_off_the_biases(tmp_path):
    rows = toy_rows(n_per_label=6)
    # Skewed sentiment: many neutral rows, so the weights differ by class.
    rows += [{"task": "sentiment", "text": f"calm day {i}", "label": "neutral"} for i in range(30)]
    by_task = _by_task(rows)
    biases = {}
    for correction in (0.0, 1.0):
        settings = tiny_settings(tmp_path / str(correction))
        settings.train.head_epochs = 3
        settings.train.prior_correction = correction
        info = train_model("head", settings, TrainData(by_task, by_task), progress=False)
        with np.load(info.path / "heads.npz") as heads:
            biases[correction] = heads["sentiment_bias"], heads["sentiment_kernel"]
    np.testing.assert_allclose(biases[0.0][1], biases[1.0][1], atol=1e-6)  # same training
    # The weights are those of the rows trained on: the train rows less the dev slice.
    sentiment = by_task["sentiment"]
    fit = sentiment.subset(~holdout_mask(sentiment.texts, 0.1, salt="dev"))
    w = class_weights(fit.labels, ["negative", "neutral", "positive"], 0.5)
    np.testing.assert_allclose(biases[0.0][0] - biases[1.0][0], np.log(w), atol=1e-5)


def test_task_loss_weighs_each_row_by_its_target_mass():
    cw = np.array([2.0, 0.5, 0.5], np.float32)
    loss = TaskLoss(cw, smoothing=0.1)
    logits = np.array([[2.0, 0.0, -1.0]] * 3, np.float32)
    y = np.array([[1, 0, 0], [0, 0, 0], [0.5, 0.25, 0.25]], np.float32)
    per_row = np.asarray(loss.call(y, logits))
    log_p = logits[0] - np.log(np.exp(logits[0]).sum())
    gold = -(np.array([0.9, 0, 0]) + 0.1 / 3) @ log_p * 2.0  # smoothed, class-weighted
    assert per_row[0] == pytest.approx(gold, rel=1e-5)
    assert per_row[1] == 0  # no label, no teacher: adds nothing
    dist = np.array([0.5, 0.25, 0.25])
    soft = -(dist * 0.9 + 0.1 / 3) @ log_p * (dist @ cw)
    assert per_row[2] == pytest.approx(soft, rel=1e-5)


def test_teacher_labels_each_text_for_the_task_it_lacks(tiny_registry, tmp_path):
    teacher = Scorer.load("champion", tiny_settings(tiny_registry))
    data = _by_task(toy_rows(n_per_label=2))
    settings = tiny_settings(tmp_path)
    labels = {t: list(teacher.labels[t]) for t in data}
    ctx = Context(settings, None, None, labels, data, data, data, epochs=1, progress=False)
    plain, version = targets(ctx)
    assert version is None and not plain["topic"][len(data["topic"]) :].any()

    settings.train.teacher, settings.train.teacher_weight = str(teacher.info.path), 0.5
    y, version = targets(ctx)
    assert version == teacher.version
    n_topic = len(data["topic"])
    np.testing.assert_array_equal(y["topic"][:n_topic], plain["topic"][:n_topic])  # gold kept
    expected = teacher.predict_proba(data["sentiment"].texts)["topic"] * 0.5
    np.testing.assert_allclose(y["topic"][n_topic:], expected, atol=1e-6)
    expected = teacher.predict_proba(data["topic"].texts)["sentiment"] * 0.5
    np.testing.assert_allclose(y["sentiment"][:n_topic], expected, atol=1e-6)

    ctx.labels = {**labels, "sentiment": labels["sentiment"][::-1]}
    with pytest.raises(ValueError, match="other sentiment labels"):
        targets(ctx)


def test_full_training_records_its_teacher(tiny_registry, tmp_path):
    settings = tiny_settings(tmp_path)
    settings.train.max_steps_per_epoch = 4
    settings.train.teacher = str(Registry(tiny_registry).champion().path)
    data = _by_task(toy_rows(n_per_label=2))
    info = train_model("full", settings, TrainData(data, data), epochs=1, progress=False)
    assert info.meta["notes"]["teacher"] == Registry(tiny_registry).champion_version()
    assert info.meta["train_settings"]["teacher"] == settings.train.teacher
    card = (info.path / "MODEL_CARD.md").read_text()
    assert f"Teacher (distilled from): `{info.meta['notes']['teacher']}`" in card


def test_lora_distils_and_stops_when_out_of_time(tiny_registry, tmp_path):
    """The teacher works for adapters too; a time limit ends the run with the state so far."""
    settings = tiny_settings(tmp_path)
    settings.train.teacher = str(Registry(tiny_registry).champion().path)
    settings.train.max_train_minutes = 1e-9  # out of time before the first step
    data = _by_task(toy_rows(n_per_label=2))
    info = train_model("lora", settings, TrainData(data, data), epochs=3, progress=False)
    notes = info.meta["notes"]
    assert notes["stopped_at"] == {"epoch": 1, "step": 0} and len(info.meta["history"]) == 1
    assert notes["teacher"] == Registry(tiny_registry).champion_version()
    assert notes["lora"] == {"rank": 16, "alpha": 32.0, "layers": 12}
    card = (info.path / "MODEL_CARD.md").read_text()
    assert "LoRA adapter: rank 16" in card and "weights sha256" in card
