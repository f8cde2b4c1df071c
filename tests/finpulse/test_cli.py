import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from app.cli import app

runner = CliRunner()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "config" in result.output


def test_config_show_prints_effective_toml(tmp_path):
    cfg = tmp_path / "f.toml"
    cfg.write_text('[kafka]\npartitions = 9\n[elasticsearch]\napi_key = "k"\n')
    result = runner.invoke(app, ["--config", str(cfg), "config", "show"])
    assert result.exit_code == 0, result.output
    assert "partitions = 9" in result.output
    assert 'api_key = "**********"' in result.output


def test_invalid_config_exits_2_naming_key(tmp_path):
    cfg = tmp_path / "f.toml"
    cfg.write_text("[kafka]\npartitions = -1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "finpulse", "--config", str(cfg), "config", "show"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "kafka.partitions" in proc.stderr


@pytest.mark.parametrize(
    ("command", "setting", "message"),
    [
        (["alerts", "list"], "FINPULSE_ALERTS__STATE_DB", "alerts.db is not a readable SQLite"),
        (["serve", "--port", "0"], "FINPULSE_STORE__SQLITE_PATH", "move the damaged one aside"),
    ],
)
def test_a_corrupt_state_file_is_one_line_with_what_to_do(tmp_path, command, setting, message):
    damaged = tmp_path / ("alerts.db" if "ALERTS" in setting else "finpulse.db")
    damaged.write_bytes(b"not a database\n" * 300)
    env = {**os.environ, "FINPULSE_ALERTS__STATE_DB": str(tmp_path / "ok.db")}
    env |= {setting: str(damaged), "FINPULSE_API__METRICS_PORT": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "finpulse", *command],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line
