"""Slow: the real MiniLM encoder on a sample of the real data sets."""

from pathlib import Path

import numpy as np
import pytest

from model.config import ModelSettings, TrainSettings
from model.data import holdout_mask, load_split

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (DATA / "twitter-fin-topic").is_dir(), reason=f"no data at {DATA}"),
]


def test_packaged_minilm_embeds_paraphrases_closer():
    from model.encoder import load_backbone, load_tokenizer, packaged_base, run_batched, tokenize
    from model.network import build_network, compile_forward

    base = packaged_base()
    net = build_network(
        load_backbone(base), {"topic": ["a"], "sentiment": ["b"]}, dropout=0.0, normalize=True
    )
    texts = [
        "The Fed raised interest rates by 25 basis points.",
        "Central bank hikes rates a quarter point.",
        "My cat sleeps all afternoon on the sofa.",
    ]
    v = run_batched(
        compile_forward(net.embedder),
        tokenize(load_tokenizer(base, 64), texts),
        batch_size=8,
        max_length=64,
    )
    sims = v @ v.T
    assert sims[0, 1] > 0.4 and sims[0, 2] < 0.2 and sims[1, 2] < 0.2


def test_head_on_real_sample_beats_majority_baseline(tmp_path):
    from model.data import Labeled
    from model.train import TrainData, train_model

    settings = ModelSettings(registry_dir=tmp_path, train=TrainSettings(head_epochs=30))
    train, valid = (load_split(DATA, settings.data_files, s) for s in ("train", "valid"))
    rng = np.random.default_rng(0)

    def sample(d: Labeled, n: int) -> Labeled:
        keep = np.zeros(len(d), bool)
        keep[rng.choice(len(d), size=min(n, len(d)), replace=False)] = True
        return d.subset(keep)

    data = TrainData(
        train={t: sample(d, 2000) for t, d in train.items()},
        valid={t: sample(d.subset(holdout_mask(d.texts, 0.5)), 600) for t, d in valid.items()},
    )
    info = train_model("head", settings, data, progress=False)
    for task, m in info.metrics["valid"].items():
        labels = data.valid[task].labels
        majority = max(labels.count(y) for y in set(labels)) / len(labels)
        # Always answering the majority class: its F1 on that class, 0 on the others.
        majority_f1 = 2 * majority / (1 + majority) / len(set(labels))
        print(task, m["accuracy"], m["macro_f1"], majority, majority_f1)
        assert m["accuracy"] > majority, (task, m["accuracy"], majority)
        assert m["macro_f1"] > majority_f1 + 0.25, (task, m["macro_f1"], majority_f1)
