"""deploy/ is validated offline by real validators (deploy/check.sh), and those validators bite.

The first run installs the tools (deploy/tools/install.sh: PyPI + Go module proxy, a few
minutes on a clean cache); later runs take seconds.
"""

import http.server
import importlib.util
import os
import subprocess
import sys
import threading
from pathlib import Path, PurePosixPath

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("FINPULSE_CACHE", Path.home() / ".cache/finpulse"))
TOOLS = CACHE / "deploy-tools-venv/bin"
ENV = {**os.environ, "PYTHON": sys.executable}


def _load(path: str):
    """A deploy script as a module (they are files run in place, not a package)."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


keys = _load("deploy/tools/check_config_keys.py")
health = _load("deploy/docker/healthcheck.py")


def run(*cmd, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in cmd], cwd=ROOT, env=ENV, input=stdin,
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip


@pytest.fixture(scope="session")
def tools() -> None:
    result = run("bash", ROOT / "deploy/tools/install.sh")
    assert result.returncode == 0, result.stderr


# --- the deploy files pass every validator ---------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("step", ["dockerfile", "compose", "k8s", "config-keys"])
def test_check_step_passes(tools, step):
    result = run("bash", ROOT / "deploy/check.sh", step)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"deploy checks ok: {step}" in result.stdout


def test_compose_mounts_and_build_context_exist():
    """Bind mounts of files other packages own (rules, dashboards) must really be there."""
    compose = ROOT / "deploy/compose/compose.yaml"
    services = yaml.safe_load(compose.read_text())["services"]
    sources = {
        v.split(":", 1)[0]
        for s in services.values()
        for v in s.get("volumes", [])
        if v.startswith((".", "/"))
    }
    assert sources, "expected bind mounts"
    missing = sorted(s for s in sources if not (compose.parent / s).exists())
    assert missing == [], f"compose mounts missing files: {missing}"
    assert (compose.parent / "../../pyproject.toml").is_file()


def test_example_secret_holds_only_settings():
    secret = yaml.safe_load((ROOT / "deploy/k8s/base/secret.example.yaml").read_text())
    names = list(secret["stringData"])
    assert names and all(n.startswith(keys.PREFIX) for n in names)
    assert [e for n in names if (e := keys.env_name_error(n))] == []


# --- the config-key check, built from the pydantic model -------------------------------------


def test_field_paths_follow_the_settings_model():
    assert keys.field_path_error(["kafka", "partitions"]) is None
    assert keys.field_path_error(["data_dir"]) is None
    assert keys.field_path_error(["ingest", "watchlist", "ACME"]) is None  # free-form mapping
    assert "no such setting" in keys.field_path_error(["kafka", "partition"])
    assert "no such setting" in keys.field_path_error(["nosuchsection", "x"])
    assert "is a section" in keys.field_path_error(["kafka"])
    assert "is a value" in keys.field_path_error(["kafka", "partitions", "x"])
    assert keys.env_name_error("FINPULSE_KAFKA__SASL_PASSWORD") is None
    assert keys.env_name_error("FINPULSE_KAFKA__SASL_PASWORD") is not None
    assert keys.toml_key_errors({"kafka": {"partitions": 2}, "ingest": {"watchlist": {}}}) == []
    assert keys.toml_key_errors({"kafka": {"partitons": 2}}) != []


def _role_errors(env: dict[str, str], toml: str | None = None) -> list[str]:
    return keys.role_errors(keys.Role("test", env, toml))[0]


def test_role_check_loads_values_and_catches_typos():
    assert _role_errors({"FINPULSE_METRICS__PORT": "18001"}, "[kafka]\npartitions = 8\n") == []
    assert _role_errors({"FINPULSE_METRICS__PORT": "not-a-port"})
    assert _role_errors({"FINPULSE_API_TOKEN": "x"})  # single underscore: silently ignored
    assert _role_errors({}, "[kafka]\nsecurity_protocol = 'SSL2'\n")
    assert _role_errors({}, "[kafak]\npartitions = 8\n")


def test_compose_interpolation_needs_every_required_variable():
    variables = {"SET": "v"}
    assert keys.interpolate("${SET}/${UNSET:-d}/$${X}", variables) == "v/d/${X}"
    with pytest.raises(KeyError):
        keys.interpolate("${UNSET:?must be set}", variables)


TOML = "[kafka]\npartitions = 2\n"
CONFIG = {"FINPULSE_CONFIG": "/etc/finpulse/finpulse.toml"}


def _container(command: str, *mounts: tuple[str, str]) -> dict:
    return {
        "name": command, "args": [command],
        "env": [{"name": k, "value": v} for k, v in CONFIG.items()],
        "volumeMounts": [{"name": "c", "mountPath": "/etc/finpulse"}]
        + [{"name": n, "mountPath": p} for n, p in mounts],
    }  # fmt: skip


def _deployment(name: str, containers: list[dict], replicas: int = 1, **spec) -> dict:
    volumes = [
        {"name": "c", "configMap": {"name": "cfg"}},
        {"name": "pvc", "persistentVolumeClaim": {"claimName": f"{name}-state"}},
        {"name": "scratch", "emptyDir": {}},
    ]
    template = {"spec": {"containers": containers, "volumes": volumes}}
    return {
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "template": template, **spec},
    }


def _roles(docs: list[dict]) -> list:
    """The roles of ``docs`` beside the ConfigMap they mount, with their settings loaded."""
    config = {"kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"finpulse.toml": TOML}}
    roles = keys.k8s_roles([config, *docs], {})
    assert keys.check(roles) == []
    return roles


STATE = "/var/lib/finpulse"
WORKDIR = PurePosixPath(STATE)  # the image's; var/alerts.db lands on the state volume
RECREATE = {"strategy": {"type": "Recreate"}}


def test_worker_replicas_may_not_exceed_partitions():
    docs = [
        _deployment("w", [_container("worker")], replicas=3),
        {
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "w"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "w"}, "maxReplicas": 4},
        },
    ]
    roles = _roles(docs)
    assert [r.toml for r in roles] == [TOML]
    found = keys.replica_errors(docs, roles)
    assert len(found) == 2 and all("kafka.partitions=2" in e for e in found)


def test_the_shipped_image_runs_where_the_state_volumes_are_mounted():
    assert keys.dockerfile_workdir((ROOT / "deploy/docker/Dockerfile").read_text()) == WORKDIR


def test_serve_beside_the_alerter_in_one_pod_passes():
    pod = [_container("alerter", ("pvc", STATE)), _container("serve", ("pvc", STATE))]
    docs = [_deployment("alerts", pod, **RECREATE)]
    roles = _roles(docs)
    assert [r.name for r in roles] == ["Deployment/alerts/alerter", "Deployment/alerts/serve"]
    assert keys.singleton_errors(docs, roles) == []
    assert keys.state_errors(roles, WORKDIR) == []


def test_the_alerter_is_one_replica_never_rolled_over_or_autoscaled():
    docs = [
        _deployment("alerts", [_container("alerter", ("pvc", STATE))], replicas=2),
        {
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "alerts-hpa"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "alerts"}},
        },
    ]
    found = keys.singleton_errors(docs, _roles(docs))
    assert len(found) == 3, found
    assert any("replicas must be 1, not 2" in e for e in found)
    assert any("Recreate" in e for e in found)
    assert any("HorizontalPodAutoscaler/alerts-hpa scales the alerter" in e for e in found)


def test_alert_state_must_persist_and_be_what_serve_reads():
    on_scratch = [_deployment("a", [_container("alerter", ("scratch", STATE))], **RECREATE)]
    assert "not persistent" in " ".join(keys.state_errors(_roles(on_scratch), WORKDIR))
    no_mount = [_deployment("a", [_container("alerter")], **RECREATE)]
    assert "container's filesystem" in " ".join(keys.state_errors(_roles(no_mount), WORKDIR))
    # serve in its own Pod, even on a persistent volume: another node, another SQLite file
    apart = [
        _deployment("a", [_container("alerter", ("pvc", STATE))], **RECREATE),
        _deployment("s", [_container("serve", ("pvc", STATE))], **RECREATE),
    ]
    found = keys.state_errors(_roles(apart), WORKDIR)
    assert len(found) == 1 and found[0].startswith("Deployment/s: reads alerts.state_db")
    assert "exactly one alerter" in keys.state_errors(_roles(apart[1:]), WORKDIR)[0]


def test_compose_alerter_and_serve_share_a_named_volume(tmp_path):
    (tmp_path / "finpulse.toml").write_text(TOML)
    (tmp_path / ".env").write_text("")
    config = "./finpulse.toml:/etc/finpulse/finpulse.toml:ro"

    def errors(serve_volume: str, replicas: int = 1) -> list[str]:
        services = {
            "alerter": {
                "image": "finpulse:cpu", "command": ["alerter"], "environment": CONFIG,
                "volumes": [config, f"alerts:{STATE}"], "deploy": {"replicas": replicas},
            },
            "serve": {
                "image": "finpulse:cpu", "command": ["serve"], "environment": CONFIG,
                "volumes": [config, f"{serve_volume}:{STATE}"],
            },
        }  # fmt: skip
        compose = tmp_path / "compose.yaml"
        compose.write_text(yaml.safe_dump({"services": services}))
        found = keys.compose_roles(compose, tmp_path / ".env", {})
        assert keys.check(found) == []
        docs = [
            {"kind": "compose", "metadata": {"name": n}, "spec": s} for n, s in services.items()
        ]
        return keys.singleton_errors(docs, found) + keys.state_errors(found, WORKDIR)

    assert errors("alerts") == []
    assert "mount the same volume" in " ".join(errors("serve-state"))
    assert "replicas must be 1, not 3" in " ".join(errors("alerts", replicas=3))


def test_healthcheck_asks_the_alerter_port_from_its_settings(tmp_path, monkeypatch):
    """A real /metrics listener on stream.alerter_port: healthy; the same port closed: not."""
    monkeypatch.chdir(tmp_path)  # no ./finpulse.toml
    monkeypatch.delenv("FINPULSE_CONFIG", raising=False)
    server = http.server.HTTPServer(("127.0.0.1", 0), _MetricsHandler)
    port = server.server_address[1]
    monkeypatch.setenv("FINPULSE_STREAM__ALERTER_PORT", str(port))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert health.main(["alerter"]) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert health.main(["alerter"]) == 1
    assert health.main(["retrain"]) == 0  # no listener: nothing to ask


def test_every_long_running_compose_role_has_a_healthcheck_port():
    services = yaml.safe_load((ROOT / "deploy/compose/compose.yaml").read_text())["services"]
    commands = {
        s["command"][0]
        for s in services.values()
        if str(s.get("image", "")).startswith("finpulse") and s.get("restart") != "no"
    }
    assert "alerter" in commands
    assert commands <= set(health.PORTS), commands - set(health.PORTS)


class _MetricsHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/metrics" else 404)
        self.end_headers()
        self.wfile.write(b"# finpulse\n")

    def log_message(self, *args) -> None:
        pass


# --- each validator rejects a broken file (so a pass means something) ------------------------


@pytest.mark.slow
def test_validators_reject_broken_files(tools, tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python\nRUN apt-get install curl\n")
    assert run(TOOLS / "hadolint", dockerfile).returncode != 0

    compose = tmp_path / "compose.yaml"
    compose.write_text("services:\n  a:\n    image: x\n    restart: sometimes\n    colour: red\n")
    schema = ("--builtin-schema", "vendor.compose-spec")
    assert run(TOOLS / "check-jsonschema", *schema, compose).returncode != 0

    pdb = tmp_path / "pdb.yaml"
    pdb.write_text(
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: x}\n"
        "spec: {maxUnavailabel: 1}\n"
    )
    assert run(TOOLS / "kubernetes-validate", "--strict", "-k", "1.37.0", pdb).returncode != 0

    monitor = (
        "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\n"
        "spec: {endpoints: [{port: metrics, intervall: 15s}], selector: {}}\n"
    )
    result = run(CACHE / "bin/crdcheck", stdin=monitor)
    assert result.returncode == 1 and "intervall" in result.stdout
    fixed = monitor.replace("intervall", "interval")
    assert run(CACHE / "bin/crdcheck", stdin=fixed).returncode == 0
