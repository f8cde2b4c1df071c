"""deploy/ is validated offline by real validators (deploy/check.sh), and those validators bite.

The first run installs the tools (deploy/tools/install.sh: PyPI + Go module proxy, a few
minutes on a clean cache); later runs take seconds.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("FINPULSE_CACHE", Path.home() / ".cache/finpulse"))
TOOLS = CACHE / "deploy-tools-venv/bin"
ENV = {**os.environ, "PYTHON": sys.executable}


def _load_checker():
    spec = importlib.util.spec_from_file_location(
        "check_config_keys", ROOT / "deploy/tools/check_config_keys.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


keys = _load_checker()


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


def test_worker_replicas_may_not_exceed_partitions(tmp_path):
    toml = "[kafka]\npartitions = 2\n"
    worker = {"FINPULSE_CONFIG": "/etc/finpulse/finpulse.toml"}
    docs = [
        {"kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"finpulse.toml": toml}},
        {
            "kind": "Deployment",
            "metadata": {"name": "w"},
            "spec": {
                "replicas": 3,
                "template": {"spec": {
                    "containers": [{
                        "name": "finpulse", "args": ["worker"],
                        "env": [{"name": k, "value": v} for k, v in worker.items()],
                        "volumeMounts": [{"name": "c", "mountPath": "/etc/finpulse"}],
                    }],
                    "volumes": [{"name": "c", "configMap": {"name": "cfg"}}],
                }},
            },
        },
        {
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "w"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "w"}, "maxReplicas": 4},
        },
    ]  # fmt: skip
    roles = keys.k8s_roles(docs, {})
    assert [r.toml for r in roles] == [toml]
    errors, workers = keys.check(roles)
    assert errors == []
    found = keys.replica_errors(docs, workers)
    assert len(found) == 2 and all("kafka.partitions=2" in e for e in found)


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
