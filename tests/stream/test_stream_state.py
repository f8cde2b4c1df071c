"""State files: durable writes, a clear error for a corrupt one, one runner per state."""

import json
import os

import pytest
from typer.testing import CliRunner

from app.cli import app
from stream.state import StateError, StateLock, read_state, write_state


def test_write_state_fsyncs_the_file_and_its_directory_before_it_counts(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.fstat(fd).st_mode) or real(fd))
    path = tmp_path / "rates.json"
    write_state(path, {"a": 1})
    assert read_state(path) == {"a": 1}
    assert len(synced) == 2  # the data, then the directory entry of the rename
    assert not (tmp_path / "rates.json.tmp").exists()


@pytest.mark.parametrize("content", [b'{"keys": {', b"[1, 2, 3]", b"\xff\xfe"])
def test_a_corrupt_state_file_is_a_clear_error_saying_what_to_do(tmp_path, content):
    path = tmp_path / "rates.json"
    path.write_bytes(content)
    with pytest.raises(StateError, match="move it away"):
        read_state(path)


def test_a_second_holder_of_the_state_lock_is_refused_until_the_first_lets_go(tmp_path):
    db = tmp_path / "finpulse.db"
    with StateLock(db), pytest.raises(StateError, match=f"locked by pid {os.getpid()}"):
        StateLock(db).__enter__()
    with StateLock(db):  # released: free again
        pass


def _env(tmp_path):
    return {
        "FINPULSE_STORE__SQLITE_PATH": str(tmp_path / "finpulse.db"),
        "FINPULSE_ALERTS__STATE_DB": str(tmp_path / "alerts.db"),
        "FINPULSE_STREAM__DEADLETTER_PATH": str(tmp_path / "dl.jsonl"),
        "FINPULSE_MODEL__REGISTRY_DIR": str(tmp_path / "no-models"),
    }


def test_a_second_embedded_runner_on_the_same_state_exits_with_one_line(tmp_path):
    replay = tmp_path / "r.csv"
    replay.write_text("text\nhello\n")
    with StateLock(tmp_path / "finpulse.db"):  # the first runner
        r = CliRunner().invoke(app, ["run", "--embedded", "--replay", str(replay)],
                               env=_env(tmp_path))  # fmt: skip
    assert r.exit_code == 2, r.output
    assert "finpulse.db.lock is locked by pid" in r.output
    assert "Traceback" not in r.output


def test_a_corrupt_rates_file_stops_the_runner_with_one_line(tmp_path):
    replay = tmp_path / "r.csv"
    replay.write_text("text\nhello\n")
    (tmp_path / "finpulse.rates.json").write_text(json.dumps([1, 2, 3]))
    r = CliRunner().invoke(app, ["run", "--embedded", "--replay", str(replay)],
                           env=_env(tmp_path))  # fmt: skip
    assert r.exit_code == 2, r.output
    assert "finpulse.rates.json holds no JSON object; move it away" in " ".join(r.output.split())
    assert "Traceback" not in r.output
