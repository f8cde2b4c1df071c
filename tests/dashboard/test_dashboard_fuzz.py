"""A schema-driven fuzzer (Schemathesis) against the API's own /openapi.json.

The API runs on 127.0.0.1 over a fed history, on each store (real uvicorn, so connection handling is
tested too); ``st run`` generates requests from the published schema, valid and invalid,
and checks every response: no server error, no valid request refused, no invalid request
accepted, status codes, content types, headers and bodies as documented, 405 with a
correct ``Allow``. Fixed seed and example budget keep it deterministic and ~1 minute.
"""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from dashboard_helpers import free_port

from dashboard.app import create_app

HERE = Path(__file__).parent
MAX_EXAMPLES = 60
SEED = 18


@pytest.fixture
def served(services):
    """The API over a fed history (each store: SQLite, and Elasticsearch as integration)."""
    port = free_port()
    config = uvicorn.Config(create_app(services), host="127.0.0.1", port=port, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.slow
def test_fuzzer_finds_no_contract_failure(served, tmp_path):
    report = tmp_path / "fuzz.json"
    st = Path(sys.executable).with_name("st")
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "api_fuzz_hooks",
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [str(st), "run", f"{served}/openapi.json", "--checks", "all",
         "--exclude-path", "/api/events",  # an endless stream: tested in test_dashboard_api
         "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--workers", "1",
         "--generation-database", "none", "--no-color", "--request-timeout", "10",
         "--report", "json", "--report-json-path", str(report)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env,
    )  # fmt: skip
    result = json.loads(report.read_text())
    cases = result["test_cases"]
    print(f"fuzzer: {cases['generated']} requests, {cases['with_failures']} with failures, "
          f"{result['running_time']:.0f} s")  # fmt: skip
    assert result["complete"] and not result["errors"], proc.stdout[-5000:]
    assert result["failures"] == [] and proc.returncode == 0, proc.stdout[-8000:]
    assert result["operations"]["tested"] == result["operations"]["selected"] >= 14
    assert cases["generated"] >= 1000
