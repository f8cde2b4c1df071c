from model.data import Labeled
from model.registry import Registry
from model.retrain import decide, retrain
from model.train import TrainData
from tools.model.tiny import tiny_settings, toy_rows


def test_decide():
    assert decide(0.9, 0.8, 0.0)[0]
    assert decide(0.8, 0.8, 0.0)[0]  # not worse is enough
    assert not decide(0.79, 0.8, 0.0)[0]
    assert decide(0.79, 0.8, 0.02)[0]
    assert decide(0.1, None, 0.0) == (True, "no comparable champion")


def _data(seed):
    rows = toy_rows(n_per_label=5, seed=seed)
    return {
        t: Labeled(
            t,
            [r["text"] for r in rows if r["task"] == t],
            [r["label"] for r in rows if r["task"] == t],
        )
        for t in ("topic", "sentiment")
    }


def test_retrain_promotes_only_when_not_worse_and_records_both_scores(tmp_path):
    settings = tiny_settings(tmp_path)
    settings.retrain.holdout_fraction = 1.0
    data = TrainData(train=_data(1), valid=_data(2))
    registry = Registry(tmp_path)

    first = retrain(settings, tmp_path, method="few-shot", data=data, progress=False)
    assert first["promoted"] and first["champion"] is None
    assert registry.champion_version() == first["challenger"]

    worse = retrain(settings, tmp_path, method="zero-shot", data=data, progress=False)
    assert worse["champion"] == first["challenger"] and not worse["promoted"]
    assert worse["champion_score"] > worse["challenger_score"]
    assert registry.champion_version() == first["challenger"]

    same = retrain(settings, tmp_path, method="few-shot", data=data, progress=False)
    assert same["challenger_score"] == same["champion_score"] and same["promoted"]
    assert registry.champion_version() == same["challenger"]
    assert [d["promoted"] for d in registry.decisions()] == [True, False, True]
    assert registry.decisions()[1]["holdout_rows"]["topic"] == len(data.valid["topic"])
