import subprocess
import sys

from typer.testing import CliRunner

from finpulse.cli import app

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
