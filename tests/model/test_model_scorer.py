"""The scorer: order, padding invariance, thread use; the score CLI round trip."""

import json
import subprocess
import sys
import threading

import numpy as np
import pytest
from typer.testing import CliRunner

from model.encoder import balanced_parts, bucket_length, length_batches, pad

TEXTS = [
    "shares fall",
    "the fed says rates rise today and the market is weak on loss news",
    "ipo",
    "oil energy report",
    "dividend up",
] * 7


def test_batches_cover_everything_once():
    lengths = np.random.default_rng(0).integers(1, 60, size=101)
    for rng in (None, np.random.default_rng(1)):
        batches = length_batches(lengths, 16, rng)
        assert sorted(np.concatenate(batches).tolist()) == list(range(101))
        assert max(len(b) for b in batches) == 16
    # a mixed stream batch is cut where the bucket grows: less padding than one batch
    batches = length_batches(lengths[:64], 64)
    padded = sum(len(b) * bucket_length(lengths[b].max(), 64) for b in batches)
    assert len(batches) > 1 and padded < 64 * bucket_length(lengths[:64].max(), 64)
    ids, mask = pad([np.array([2, 5, 3]), np.array([2, 3])], max_length=64)
    assert ids.shape == (2, 8) and mask.sum() == 5
    assert {bucket_length(n, 64) for n in range(1, 200)} == {8, 16, 24, 32, 40, 48, 56, 64}


def test_parallel_parts_balance_padded_cost():
    lengths = np.random.default_rng(2).integers(3, 64, size=64)

    def cost(group):
        return len(group) * bucket_length(lengths[group].max(), 64)

    for parts in (1, 2, 3, 4):
        groups = balanced_parts(lengths, parts, max_length=64)
        assert sorted(np.concatenate(groups).tolist()) == list(range(64))
        assert len(groups) <= parts
        equal_rows = np.array_split(np.argsort(lengths), parts)
        assert max(map(cost, groups)) <= max(map(cost, equal_rows))
    assert [len(g) for g in balanced_parts(np.array([9]), 2, max_length=64)] == [1]


def test_bucketing_and_padding_do_not_change_results(tiny_scorer):
    together = tiny_scorer.predict_proba(TEXTS)
    fixed = tiny_scorer.predict_proba(TEXTS, batch_size=4, fixed_length=32)
    alone = [tiny_scorer.predict_proba([t]) for t in TEXTS[:5]]
    for task in ("topic", "sentiment"):
        np.testing.assert_allclose(together[task], fixed[task], atol=1e-4)
        np.testing.assert_allclose(
            together[task][:5], np.vstack([a[task] for a in alone]), atol=1e-4
        )
    assert tiny_scorer.predict([]) == []


def test_predict_from_threads(tiny_scorer):
    expected = [p.topic for p in tiny_scorer.predict(TEXTS)]
    results = {}

    def work(i):
        results[i] = [p.topic for p in tiny_scorer.predict(TEXTS)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == expected for r in results.values())


def test_usable_cpus_follow_the_container_quota(tmp_path):
    import os

    from model.device import usable_cpus

    cores = len(os.sched_getaffinity(0))
    assert usable_cpus(tmp_path / "none") == cores  # no cgroup files: the affinity mask
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("100000 100000\n")
    assert usable_cpus(v2) == 1
    (v2 / "cpu.max").write_text("max 100000\n")
    assert usable_cpus(v2) == cores
    v1 = tmp_path / "v1" / "cpu"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert usable_cpus(v1.parent) == 1  # half a core still runs one batch
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    assert usable_cpus(v1.parent) == cores


PARALLEL_SCRIPT = """
import json, sys
from model.scorer import Scorer
from tools.model.tiny import tiny_settings
settings = tiny_settings(sys.argv[1]).model_copy(update={"cpu_parallel_batches": 2})
scorer = Scorer.load("champion", settings)
import tensorflow as tf
probs = scorer.predict_proba(json.loads(sys.argv[2]), batch_size=4)
print(json.dumps({
    "parallel": scorer.parallel,
    "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
    "topic": probs["topic"].tolist(),
}))
"""


def test_parallel_batches_in_a_fresh_process(tiny_registry, tiny_scorer):
    """Before TensorFlow starts, the scorer gives each of its batches one op thread."""
    run = subprocess.run(
        [sys.executable, "-c", PARALLEL_SCRIPT, str(tiny_registry), json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["parallel"] == 2 and out["intra_op_threads"] == 1
    np.testing.assert_allclose(out["topic"], tiny_scorer.predict_proba(TEXTS)["topic"], atol=1e-4)


@pytest.fixture()
def cli(tiny_registry, monkeypatch):
    from app.cli import app

    monkeypatch.setenv("FINPULSE_MODEL__REGISTRY_DIR", str(tiny_registry))
    monkeypatch.setenv("FINPULSE_MODEL__SHIPPED_MODEL", "false")  # only the tiny models
    monkeypatch.setenv("FINPULSE_MODEL__MAX_TEXT_CHARS", "300")
    return lambda *args, input=None: CliRunner().invoke(app, list(args), input=input)


def test_score_cli_round_trip(cli, tiny_registry, tmp_path):
    lines = [
        json.dumps({"id": "a1", "text": "shares fall loss"}),
        "plain text line about the fed",
        "",
        json.dumps({"id": 7, "text": "x" * 301}),
        '{"id": broken',
        json.dumps({"id": "t", "title": "Oil jumps", "body": "Energy report"}),
        json.dumps({"id": "n", "text": None}),
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    result = cli("score", str(src), "--output", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 0, result.output
    out = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [o["id"] for o in out] == ["a1", 2, 3, 7, 5, "t", "n"]
    version = (tiny_registry / "CHAMPION").read_text().strip()
    assert all(o["model_version"] == version for o in out)
    assert set(out[0]) == {
        "id",
        "topic",
        "topic_probs",
        "sentiment",
        "sentiment_probs",
        "model_version",
    }
    assert "error" not in out[1] and "error" not in out[5]
    assert out[2]["error"] == "empty text"
    assert out[3]["error"].startswith("text too long: 301 characters")
    assert out[4]["error"].startswith("invalid JSON")
    assert out[6]["error"] == "empty text"
    # stdin works too
    result = cli("score", "-", input="hello market\n")
    assert result.exit_code == 0
    assert json.loads(result.stdout.splitlines()[0])["id"] == 1


def test_score_cli_checks_input_before_loading_a_model(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("FINPULSE_MODEL__REGISTRY_DIR", str(tmp_path / "no-models"))
    for source, why in ((tmp_path / "absent.jsonl", "No such file"), (tmp_path, "directory")):
        result = cli("score", str(source))
        assert result.exit_code == 2, result.output
        (line,) = result.output.strip().splitlines()  # one line, no traceback
        assert line.startswith(f"error: cannot read input {source}: ") and why in line
    src = tmp_path / "in.txt"
    src.write_text("fed holds\n")
    result = cli("score", str(src), "--output", str(tmp_path / "nodir" / "out.jsonl"))
    assert result.exit_code == 2 and "no directory" in result.output
    # only a readable input gets as far as the (here missing) model
    assert "cannot read" not in cli("score", str(src)).output


def test_score_cli_refuses_bad_lines_one_by_one(cli, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(
        b'{"id": "ok", "text": "shares fall"}\n'
        b"caf\xe9 au lait prices\n"  # Latin-1, not UTF-8
        b"[1, 2, 3]\n"
        b"[UPDATE] Fed holds rates\n"
        b'{"id": "sur", "text": "\\udcff"}\n'
    )
    result = cli("score", str(src), "--output", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 0, result.output
    out = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [o["id"] for o in out] == ["ok", 2, 3, 4, 5]
    assert "error" not in out[0] and "error" not in out[3]  # a headline in brackets is text
    assert out[1]["error"] == "not UTF-8 text: byte 0xe9 at column 4"
    assert out[2]["error"] == "a JSON line must be an object with a 'text' field"
    assert "lone surrogate" in out[4]["error"]
    assert "scored 2, errors 3" in result.stderr


def test_models_and_evaluate_cli(cli, tiny_registry, tmp_path, monkeypatch):
    listed = cli("models", "list", "--json")
    assert listed.exit_code == 0
    rows = json.loads(listed.stdout)
    assert [r["champion"] for r in rows] == [True]
    monkeypatch.setenv("COLUMNS", "60")  # a narrow terminal squeezes columns, not the mark
    table = cli("models", "list").stdout
    assert f"│ * {rows[0]['version'][:15]}" in table  # the version itself may be cut short
    assert rows[0]["generated_data"] and rows[0]["valid_data"].startswith("GENERATED")
    assert "measured on: GENERATED data" in table  # its numbers say what they are worth
    assert cli("models", "promote", "nope").exit_code == 2
    refused = cli("models", "promote", rows[0]["version"])
    assert refused.exit_code == 2 and "generated data" in refused.output
    data = tmp_path / "eval.csv"
    data.write_text("tweet,y\nshares fall loss weak,0\nrise beat,1\nflat steady,2\n")
    result = cli(
        "evaluate",
        "--task",
        "sentiment",
        "--data",
        str(data),
        "--text-column",
        "tweet",
        "--label-column",
        "y",
        "--json",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["n"] == 3 and metrics["model_version"] == rows[0]["version"]
    assert set(metrics["per_class"]) == {"negative", "neutral", "positive"}
    bad = cli("evaluate", "--task", "sentiment", "--data", str(data), "--json")
    assert bad.exit_code == 2 and "needs columns" in bad.output


def test_export_import_cli(cli, tmp_path, monkeypatch):
    bundle = tmp_path / "champion.tar.gz"
    exported = cli("models", "export", "champion", str(bundle))
    assert exported.exit_code == 0 and bundle.is_file(), exported.output
    raw = bytearray(bundle.read_bytes())
    raw[-40] ^= 1
    (tmp_path / "bad.tar.gz").write_bytes(bytes(raw))
    monkeypatch.setenv("FINPULSE_MODEL__REGISTRY_DIR", str(tmp_path / "other"))
    bad = cli("models", "import", str(tmp_path / "bad.tar.gz"))
    assert bad.exit_code == 2 and bad.output.startswith("error: ")
    assert len(bad.output.strip().splitlines()) == 1  # one line, no traceback
    assert cli("models", "list", "--json").stdout.strip() == "[]"  # nothing registered
    good = cli("models", "import", str(bundle))
    assert good.exit_code == 0 and "not champion" in good.output, good.output
    rows = json.loads(cli("models", "list", "--json").stdout)
    assert rows[0]["origin"]["kind"] == "imported" and not rows[0]["champion"]
