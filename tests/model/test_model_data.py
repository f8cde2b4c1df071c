import json

import numpy as np
import pandas as pd
import pytest

from model.data import DataError, holdout_mask, load_feedback, load_labeled
from model.labels import LabelError, normalize_label


def test_label_names_ids_and_synonyms():
    assert normalize_label("sentiment", 0) == "negative"
    assert normalize_label("sentiment", "1") == "positive"
    assert normalize_label("sentiment", 2) == "neutral"
    assert normalize_label("sentiment", "Bullish") == "positive"
    assert normalize_label("topic", 19) == "Stock Movement"
    assert normalize_label("topic", "fed | central banks") == "Fed | Central Banks"
    with pytest.raises(LabelError, match="out of range"):
        normalize_label("topic", 20)
    with pytest.raises(LabelError, match="not a sentiment label"):
        normalize_label("sentiment", "meh")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_load_formats(tmp_path, suffix):
    rows = [
        {"text": "Stocks fall", "label": 0},
        {"text": " ", "label": 1},
        {"text": "Stocks rise", "label": 1},
    ]
    path = tmp_path / f"d{suffix}"
    if suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows))
    elif suffix == ".csv":
        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        pd.DataFrame(rows).to_parquet(path)
    data = load_labeled(path, "sentiment")
    assert data.texts == ["Stocks fall", "Stocks rise"]  # the blank text is dropped
    assert data.labels == ["negative", "positive"]


def test_bad_rows_name_file_and_row(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame([{"text": "a", "label": 0}, {"text": "b", "label": 7}]).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"d.csv row 2: sentiment label id 7"):
        load_labeled(path, "sentiment")
    with pytest.raises(DataError, match="needs columns 'body'"):
        load_labeled(path, "sentiment", text_column="body")
    with pytest.raises(DataError, match="not found"):
        load_labeled(tmp_path / "missing.csv", "topic")


def test_feedback_rows(tmp_path):
    path = tmp_path / "fb.jsonl"
    path.write_text(
        '{"text": "Fed hikes", "task": "topic", "label": "Fed | Central Banks"}\n'
        '{"text": "Shares sink", "task": "sentiment", "label": "negative"}\n'
    )
    fb = load_feedback(path)
    assert fb["topic"].labels == ["Fed | Central Banks"]
    assert fb["sentiment"].texts == ["Shares sink"]
    path.write_text('{"text": "x", "task": "mood", "label": "negative"}\n')
    with pytest.raises(DataError, match="row 1: task must be one of"):
        load_feedback(path)


def test_holdout_is_deterministic_and_sized():
    texts = [f"text {i}" for i in range(4000)]
    mask = holdout_mask(texts, 0.25)
    assert np.array_equal(mask, holdout_mask(list(texts), 0.25))
    assert 0.2 < mask.mean() < 0.3
    assert not np.array_equal(mask, holdout_mask(texts, 0.25, salt="other"))


def test_shipped_data_is_the_default_and_a_data_dir_overrides_it(tmp_path):
    """No data dir (a fresh clone without ../shared): the shipped gzipped copy, same sha256."""
    from model.config import DEFAULT_DATA_FILES
    from model.data import SHIPPED_DATA, describe, load_split, split_source

    files = DEFAULT_DATA_FILES
    valid = load_split(tmp_path / "nowhere", files, "valid")
    assert len(valid["sentiment"]) == 2388 and len(valid["topic"]) == 4117
    source = split_source(tmp_path / "nowhere", files, "valid")
    assert source["topic"]["read"] == str(SHIPPED_DATA / "twitter-fin-topic/topic_valid.csv.gz")
    assert source["topic"]["sha256"].startswith("67396d6c")  # the original CSV's hash
    assert "(sha256 " in describe({"valid": source})

    own = tmp_path / "data" / "twitter-fin-topic"
    own.mkdir(parents=True)
    (own / "topic_valid.csv").write_text("text,label\nFed holds rates,1\n")
    override = load_split(tmp_path / "data", files, "valid")
    assert override["topic"].texts == ["Fed holds rates"]  # the data dir's file wins
    assert len(override["sentiment"]) == 2388  # the shipped one fills the gap


def test_describe_says_when_data_was_generated():
    from model.data import describe

    assert describe({"generated": True, "name": "toy"}).startswith("GENERATED")
    assert describe(None) == "data not recorded"
