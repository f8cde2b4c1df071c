"""The pipeline's Prometheus rules and Alertmanager example, checked by the real tools."""

import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def run(tool, *args):
    if shutil.which(tool) is None:
        pytest.skip(
            f"{tool} is not installed (Debian packages prometheus / prometheus-alertmanager)"
        )
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60)


def test_pipeline_rules_pass_promtool_unit_tests():
    done = run(
        "promtool",
        "test",
        "rules",
        str(DEPLOY / "prometheus/tests/finpulse-pipeline.rules.test.yml"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_alertmanager_example_is_valid():
    done = run("amtool", "check-config", str(DEPLOY / "alertmanager/alertmanager.example.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
