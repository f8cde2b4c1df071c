"""`make test`'s set-up scripts: with-services.sh stops only the services it started (a stub
stands in for services.sh, so the shared services are never touched), deps.sh names what to
install, services.sh refuses unknown service names before stopping anything."""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "deploy/local"
ALL = ["prometheus", "alertmanager", "kafka", "elasticsearch"]

# Keeps the names of "running" services in $STUB/running and logs its calls to $STUB/calls.
# `up` starts the missing ones in services.sh's order, recording each; it dies at $FAIL_AT.
STUB = """#!/usr/bin/env bash
set -eu
echo "$*" >>"$STUB/calls"
case $1 in
  up)
    for svc in prometheus alertmanager kafka elasticsearch; do
      grep -qx "$svc" "$STUB/running" && continue
      [[ $svc != "${FAIL_AT:-}" ]] || exit 1
      echo "$svc" >>"$3"
      echo "$svc" >>"$STUB/running"
    done ;;
  down)
    for svc in "${@:2}"; do sed -i "/^$svc\\$/d" "$STUB/running"; done ;;
esac
"""


@pytest.fixture
def stub(tmp_path: Path) -> Path:
    local = tmp_path / "deploy/local"
    local.mkdir(parents=True)
    shutil.copy(LOCAL / "with-services.sh", local)
    (local / "services.sh").write_text(STUB)
    (local / "services.sh").chmod(0o755)
    return tmp_path


def start(stub: Path, running: list[str], command: str, fail_at: str = "") -> subprocess.Popen:
    (stub / "running").write_text("".join(f"{s}\n" for s in running))
    (stub / "calls").write_text("")
    return subprocess.Popen(
        ["bash", stub / "deploy/local/with-services.sh", "bash", "-c", command],
        env={**os.environ, "STUB": str(stub), "FAIL_AT": fail_at},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        preexec_fn=_as_from_a_terminal,
    )  # fmt: skip


def _as_from_a_terminal() -> None:
    """SIGINT at its default, as a terminal's foreground job has it. A test run started in
    the background by a shell without job control inherits it ignored, and bash cannot
    un-ignore a signal ignored at entry: Ctrl-C would then do nothing (seen in a CI dry run)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def finish(stub: Path, proc: subprocess.Popen) -> tuple[int, str, list[str], list[str]]:
    out, _ = proc.communicate(timeout=30)
    calls = (stub / "calls").read_text().splitlines()
    return proc.returncode, out, calls, (stub / "running").read_text().split()


@pytest.mark.parametrize(
    ("running", "started"),
    [([], ALL), (ALL, []), (["kafka", "prometheus"], ["alertmanager", "elasticsearch"])],
)
def test_stops_exactly_what_it_started_and_keeps_the_exit_code(stub, running, started):
    rc, out, calls, after = finish(stub, start(stub, running, "exit 3"))
    assert rc == 3
    stops = [c for c in calls if c.startswith("down")]
    assert stops == ([f"down {' '.join(started)}"] if started else [])
    assert sorted(after) == sorted(running)
    if started:
        assert f"started for this run, stopped when it ends: {' '.join(started)}" in out


def test_a_failed_up_still_runs_the_command_and_stops_what_it_launched(stub):
    rc, out, calls, after = finish(stub, start(stub, [], "echo ran", fail_at="kafka"))
    assert rc == 0 and "ran" in out
    assert "not every service is up" in out
    assert calls[-1] == "down prometheus alertmanager"
    assert after == []


def test_ctrl_c_stops_what_it_started(stub):
    proc = start(stub, ["kafka"], "touch $STUB/waiting; sleep 30")
    deadline = time.monotonic() + 10
    while not (stub / "waiting").exists():
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends the foreground group
    rc, out, calls, after = finish(stub, proc)
    assert rc != 0
    assert "stopping what this run started: prometheus alertmanager elasticsearch" in out
    assert calls[-1] == "down prometheus alertmanager elasticsearch"
    assert after == ["kafka"]


def test_deps_names_the_packages_of_missing_commands(tmp_path):
    bin_dir = tmp_path / "bin"  # bash and env only: every command deps.sh looks for is missing
    bin_dir.mkdir()
    for cmd in ("bash", "env"):
        (bin_dir / cmd).symlink_to(shutil.which(cmd))
    env = {**os.environ, "PATH": str(bin_dir)}
    deps = [str(bin_dir / "bash"), LOCAL / "deps.sh"]
    missing = subprocess.run([*deps, "missing", "chromedriver", "java"], env=env,
                             capture_output=True, text=True, check=True)  # fmt: skip
    assert missing.stdout.split() == ["chromium-driver", "default-jre-headless"]
    # No apt-get on PATH: it cannot install, so it says what to install in one line, exit 0.
    ensure = subprocess.run([*deps, "ensure", "browser"], env=env, capture_output=True, text=True)
    assert ensure.returncode == 0
    assert ensure.stderr.splitlines() == [
        "[deps] missing Debian packages: chromium chromium-driver; the tests that need them "
        "will fail. As root run: make deps"
    ]


def test_services_sh_refuses_an_unknown_service_before_stopping_anything(tmp_path):
    env = {**os.environ, "FINPULSE_SERVICES_DIR": str(tmp_path / "state")}
    result = subprocess.run([LOCAL / "services.sh", "down", "kafka", "zookeeper"], env=env,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 2
    assert "usage:" in result.stderr and "stopping" not in result.stderr
