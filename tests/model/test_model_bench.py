"""The scoring benchmark's JSON, plain and ``--compare``, on a tiny model and toy data."""

import csv
import json

import pytest

from tools.model import bench
from tools.model.tiny import tiny_settings, toy_rows


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Validation files in the default layout, from toy rows."""
    root = tmp_path_factory.mktemp("data")
    settings = tiny_settings(tmp_path_factory.mktemp("unused"))
    for task, splits in settings.data_files.items():
        path = root / splits["valid"]
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "label"])
            writer.writerows(
                (r["text"], r["label"]) for r in toy_rows(2, seed=5) if r["task"] == task
            )
    return root


def test_compare_reports_every_path_side_by_side(tiny_registry, data_dir):
    paths = ["tensorflow-float32", "onnx", "onnx-int8"]
    result = bench.compare(tiny_settings(tiny_registry), data_dir, paths=paths, rounds=2)
    json.dumps(result)  # printable as it is
    assert result["reference"] == "tensorflow-float32" and list(result["paths"]) == paths
    assert result["texts"].startswith("46 validation tweets")  # 20 topics + 3 sentiments, x2
    assert result["chosen"]["path"] in ("tensorflow", "onnx-int8")  # per machine
    for name, entry in result["paths"].items():
        assert entry["scoring"]["path"] == bench.PATHS[name][0]
        assert entry["stream"]["articles"] == 46 * 2 and entry["stream"]["articles_per_s"] > 0
        assert entry["bulk"]["articles_per_s"] > 0
        assert set(entry["changed_labels"]) == {"topic", "sentiment"}
        assert set(entry["validation"]["topic"]) == {"accuracy", "macro_f1"}
    reference, onnx = result["paths"]["tensorflow-float32"], result["paths"]["onnx"]
    assert reference["changed_labels"] == {"topic": 0.0, "sentiment": 0.0}
    assert reference["stream_vs_reference"] == 1.0
    assert onnx["max_abs_prob_diff"]["topic"] < 1e-4
    assert onnx["validation"] == reference["validation"]
    assert result["peak_rss_mib"] > 0


def test_compare_refuses_unknown_paths(tiny_registry, data_dir):
    with pytest.raises(ValueError, match="unknown paths"):
        bench.compare(tiny_settings(tiny_registry), data_dir, paths=["onnx", "tpu"])


def test_bench_reports_the_scoring_path(tiny_registry, data_dir):
    result = bench.bench(tiny_settings(tiny_registry), data_dir)
    assert result["scoring"]["path"] in ("tensorflow", "onnx-int8")
    assert result["dtype_policy"] == result["scoring"]["dtype_policy"]
    assert result["stream"]["articles"] == result["bulk"]["articles"] == 46
