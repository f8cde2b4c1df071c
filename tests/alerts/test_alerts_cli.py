import csv
import json

import pytest
from typer.testing import CliRunner

from alerts.silences import parse_matcher
from app.cli import app as root_app
from tools.alerts.evaluate import evaluate, table


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("FINPULSE_ALERTS__STATE_DB", str(tmp_path / "a.db"))
    monkeypatch.chdir(tmp_path)
    return root_app


def write_csv(path, header, rows):
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def test_backtest_proportion_series_marks_alert_starts(app, tmp_path):
    rows = [
        (f"2026-01-05T00:{i % 60:02d}:00Z".replace("00:", f"{i // 60:02d}:", 1), neg, 20)
        for i, neg in enumerate([6, 5, 7, 6] * 20 + [17, 18, 17] + [6] * 10)
    ]
    write_csv(tmp_path / "in.csv", ["timestamp", "negative", "total"], rows)
    result = CliRunner().invoke(
        app, ["alerts", "backtest", "-i", str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv")]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["rows"] == len(rows) and summary["rows_per_s"] > 0
    out = list(csv.DictReader((tmp_path / "o.csv").open()))
    assert len(out) == len(rows) and out[0]["timestamp"] == rows[0][0]
    assert [i for i, r in enumerate(out) if r["alert"] == "1"] == [80]


def test_backtest_count_series_and_bad_input(app, tmp_path):
    def backtest(rows_csv, out, *extra):
        args = ["alerts", "backtest", "-i", str(tmp_path / rows_csv), "-o", str(out), *extra]
        return CliRunner().invoke(app, args)

    write_csv(tmp_path / "c.csv", ["timestamp", "value"], [(i * 3600, i % 2) for i in range(60)])
    ok = backtest("c.csv", tmp_path / "o.csv", "--detector", "ratio", "--param", "spike_height=4")
    assert ok.exit_code == 0, ok.output
    write_csv(tmp_path / "bad.csv", ["timestamp", "value"], [(0, 1), (3600, "many")])
    bad = backtest("bad.csv", tmp_path / "x.csv")
    assert bad.exit_code == 2 and "line 3" in bad.output
    zone = backtest("c.csv", "x.csv", "--tz", "Mars/Base")
    assert zone.exit_code == 2 and "unknown time zone" in zone.output
    step = backtest("c.csv", "x.csv", "--param", "step_s=60")
    assert step.exit_code == 2 and "step_s is the input's smallest gap" in step.output
    assert "Traceback" not in step.output


def _nab_like(path, start, n, windows_at, seed=5):
    """A NAB-layout series: naive timestamps every 5 minutes, bursty counts, bursts at
    ``windows_at`` (row indices), and its labelled windows (NAB's 'YYYY-MM-DD HH:MM:SS.ffffff')."""
    import random
    from datetime import timedelta

    rng = random.Random(seed)
    times = [start + timedelta(minutes=5 * i) for i in range(n)]
    values = [int(rng.paretovariate(2.0) * 4) for _ in range(n)]
    windows = []
    for k, at in enumerate(windows_at):
        for j in range(at, at + 6):
            values[j] += 400 * 4**k  # each burst beyond the last: new to the key's range
        windows.append(
            [
                f"{times[at - 20]:%Y-%m-%d %H:%M:%S}.000000",
                f"{times[at + 20]:%Y-%m-%d %H:%M:%S}.000000",
            ]
        )
    write_csv(
        path,
        ["timestamp", "value"],
        [(f"{t:%Y-%m-%d %H:%M:%S}", v) for t, v in zip(times, values, strict=True)],
    )
    return windows


def test_backtest_reads_nab_files_as_they_are_and_scores_labels(app, tmp_path):
    from datetime import datetime

    series = tmp_path / "Twitter_volume_X.csv"
    windows = _nab_like(series, datetime(2015, 3, 1), 288 * 6, [288 * 3, 288 * 5])
    labels = tmp_path / "combined_windows.json"
    labels.write_text(json.dumps({"realTweets/Twitter_volume_X.csv": windows}))
    result = CliRunner().invoke(
        app,
        [
            "alerts",
            "backtest",
            "-i",
            str(series),
            "-o",
            str(tmp_path / "o.csv"),
            "--labels",
            str(labels),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    # no --detector: a 'value' column is a volume, judged by its own recent range
    assert summary["detector"] == "range" and summary["windows_detected"] == "2/2"
    assert summary["nab_normalised"] > 90 and summary["false_starts_per_key_day"] < 0.5
    assert (tmp_path / "o.png").stat().st_size > 10_000
    out = list(csv.DictReader((tmp_path / "o.csv").open()))
    first = next(i for i, r in enumerate(out) if r["alert"] == "1")
    assert first == 288 * 3  # naive times are UTC, rows stay rows: the burst's own row


def test_backtest_naive_times_follow_tz_and_repeated_rows_are_reported(app, tmp_path):
    rows = [("2026-03-29 00:55:00", 3, 10), ("2026-03-29 01:00:00", 2, 10)]
    rows += [("2026-03-29 01:00:00", 2, 10), ("2026-03-29 01:05:00", 9, 10)]
    write_csv(tmp_path / "s.csv", ["timestamp", "negative", "total"], rows)
    result = CliRunner().invoke(
        app,
        [
            "alerts",
            "backtest",
            "-i",
            str(tmp_path / "s.csv"),
            "-o",
            "o.csv",
            "--tz",
            "Europe/Berlin",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["detector"] == "beta_binomial" and summary["rows_not_newer_skipped"] == 1
    out = list(csv.DictReader((tmp_path / "o.csv").open()))
    assert len(out) == 4 and out[2]["score"] == "" and out[2]["alert"] == "0"


def test_evaluate_real_puts_real_results_beside_published_ones(tmp_path):
    from datetime import datetime

    from tools.alerts.realdata import evaluate_real, real_table

    root = tmp_path / "nab"
    (root / "data" / "realTweets").mkdir(parents=True)
    (root / "labels").mkdir()
    labels = {}
    for k, name in enumerate(["Twitter_volume_A.csv", "Twitter_volume_B.csv"]):
        labels[f"realTweets/{name}"] = _nab_like(
            root / "data" / "realTweets" / name, datetime(2015, 3, 1), 288 * 5, [288 * 4], seed=k
        )
    (root / "labels" / "combined_windows.json").write_text(json.dumps(labels))
    published = root / "results" / "someone"
    published.mkdir(parents=True)
    write_csv(
        published / "someone_standard_scores.csv",
        ["Detector", "Profile", "File", "Threshold", "Score"],
        [
            ("someone", "standard", f"realTweets/{n}", 0.5, 0.0)
            for n in labels and [k.split("/")[1] for k in labels]
        ],
    )
    report = evaluate_real(root)
    assert report["detectors"]["range"]["windows_detected"] == "2/2"
    # a published score of 0 per file is halfway between "no alerts" (-1 per window) and perfect
    assert report["published"] == {"someone": 50.0}
    text = real_table(report)
    assert "| range (default) |" in text and "| someone (published) | 50.0 |" in text


def test_evaluate_command_loads_its_tools_and_refuses_a_folder_not_in_nab_layout(app, tmp_path):
    """The command imports tools.alerts.* only when run; a bad --real folder is one line."""
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(app, ["alerts", "evaluate", "--real", str(tmp_path / "empty")])
    assert res.exit_code == 2, res.output
    assert res.output.strip().splitlines() == [
        f"error: {tmp_path / 'empty'}: no series under data/realTweets/ (NAB layout expected)"
    ]


def test_silence_add_list_rm(app):
    runner = CliRunner()
    added = runner.invoke(
        app,
        ["alerts", "silence", "add", "scope=ticker", "key=~AAPL|MSFT", "--for", "2h", "--by", "me"],
    )
    assert added.exit_code == 0, added.output
    silence_id = added.output.split()[0]
    listed = runner.invoke(app, ["alerts", "silence", "list"])
    assert silence_id in listed.output and "key=~AAPL|MSFT" in listed.output
    assert runner.invoke(app, ["alerts", "silence", "rm", silence_id]).exit_code == 0
    assert silence_id not in runner.invoke(app, ["alerts", "silence", "list"]).output
    bad = runner.invoke(app, ["alerts", "silence", "add", "colour=red"])
    assert bad.exit_code == 2 and "unknown" in bad.output


def test_matcher_syntax():
    assert parse_matcher("scope!=global").matches({"scope": "topic"})
    assert not parse_matcher("key!~A.*").matches({"key": "AAPL"})
    with pytest.raises(ValueError, match="bad regular expression"):
        parse_matcher("key=~(")


def test_small_evaluation_reports_both_operating_points(tmp_path):
    cache = tmp_path / "cal.json"
    kwargs = dict(scale=0.05, workers=1, progress=False, calibration=cache, grid=(1.0, 3.0, 6.0))
    report = evaluate(scenarios=["topic", "ticker-sparse"], **kwargs)
    results, cal = report["results"], report["calibration"]
    assert set(results) == {"topic", "ticker-sparse"}
    for per in results.values():
        assert set(per) == {"beta_binomial", "negbinom", "share_or_volume", "range", "ratio"}
        assert "matched" not in per["ratio"]
        assert per["negbinom"]["matched_threshold"] in (None, 1.0, 3.0, 6.0)
    # calibration never sees the reported series
    for name, seeds in report["seeds"].items():
        assert not set(seeds) & set(cal["seeds"][name])
    # a matched threshold keeps calibration false alerts within the ratio rule's
    for name, per in cal["thresholds"].items():
        target = cal["outcomes"][name]["ratio"]["false_alerts_per_day"]
        for det, t in per.items():
            rates = {k: o["false_alerts_per_day"] for k, o in cal["outcomes"][name][det].items()}
            if t is None:
                assert min(rates.values()) > target
            else:
                assert rates[str(t)] <= target
    assert json.loads(cache.read_text())["fingerprint"] == cal["fingerprint"]
    again = evaluate(scenarios=["topic", "ticker-sparse"], **kwargs)  # served from the cache
    assert again["results"] == results
    sparse = results["ticker-sparse"]["negbinom"]["default"]
    assert sparse["spikes"] > 0 and 0 <= sparse["within_1_window_rate"] <= sparse["detection_rate"]
    assert "| ticker-sparse | negbinom | matched (" in table(report)
