"""Check that every finpulse setting the deploy files set is a real field of Settings.

Settings silently ignores an unknown top-level ``FINPULSE_*`` variable, so a typo in a manifest
would fall back to a default in production. This walks each env name and TOML key that the
Dockerfile, the compose file and the rendered Kubernetes manifests give each role through the
pydantic model (built from ``app.settings.Settings``, no list of keys kept here), then loads
every role's configuration for real so wrong types, ranges and enum values fail too.

With the loaded settings it also checks what would otherwise only show in production: workers
do not outnumber ``kafka.partitions``; there is exactly one alerter, which cannot be scaled or
overlap itself in a rollout; and its ``alerts.state_db`` is on a persistent volume that every
``serve`` reads through the same mount (same Pod in Kubernetes), so the dashboard shows the
alerts the engine writes.

Usage: check_config_keys.py --dockerfile F --compose F --compose-env F [--k8s F]... [--k8s-extra F]
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import tempfile
import tomllib
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml
from pydantic import BaseModel

from app.settings import ConfigError, Settings, load_settings

Mount = tuple[str, bool]  # (which volume, in words, as two roles must agree on; persistent?)

PREFIX = Settings.model_config["env_prefix"]
DELIMITER = Settings.model_config["env_nested_delimiter"]
CONFIG_ENV = "FINPULSE_CONFIG"  # read by app.settings.resolve_config_path, not a field
SECRET_PLACEHOLDER = "placeholder-secret"


@dataclass
class Role:
    """One container's finpulse configuration: its env and the TOML text it mounts."""

    name: str
    env: dict[str, str] = field(default_factory=dict)
    toml: str | None = None
    command: str | None = None
    problems: list[str] = field(default_factory=list)
    owner: str = ""  # what scales it: "Deployment/x", "compose/x" (default: name)
    mounts: dict[PurePosixPath, Mount] = field(default_factory=dict)  # by mount path
    settings: Settings | None = None  # once loaded

    def __post_init__(self) -> None:
        self.owner = self.owner or self.name


def _submodel(annotation: object) -> type[BaseModel] | None:
    """The section model an annotation holds (unwrapping ``X | None``), if it is one."""
    candidates = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _is_union(annotation: object) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _is_mapping(annotation: object) -> bool:
    candidates = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    return any(typing.get_origin(c) is dict or c is dict for c in candidates)


def _walk(parts: list[str]) -> tuple[str | None, type[BaseModel] | None]:
    """(why ``parts`` names no setting or None, the section model it names if it is one)."""
    model: type[BaseModel] = Settings
    for depth, part in enumerate(parts):
        info = model.model_fields.get(part)
        where = ".".join(parts[: depth + 1])
        if info is None:
            return f"{where}: no such setting (known here: {', '.join(model.model_fields)})", None
        section = _submodel(info.annotation)
        if section is None:
            deeper = depth + 1 < len(parts)
            if deeper and not _is_mapping(info.annotation):
                return f"{where}: is a value, not a section", None
            return None, None
        model = section
    return None, model


def field_path_error(parts: list[str]) -> str | None:
    """Why ``parts`` (e.g. ["kafka", "partitions"]) is not a settable value, or None if it is.

    >>> field_path_error(["kafka", "partitions"]) is None
    True
    >>> field_path_error(["kafka", "partition"])[:30]
    'kafka.partition: no such setti'
    """
    error, section = _walk(parts)
    if error is None and section is not None:
        return f"{'.'.join(parts)}: is a section, not a value"
    return error


def env_name_error(name: str) -> str | None:
    parts = name[len(PREFIX) :].lower().split(DELIMITER)
    error = field_path_error(parts)
    return f"env {name}: {error}" if error else None


def toml_key_errors(data: dict, parents: tuple[str, ...] = ()) -> list[str]:
    """Errors for TOML keys, descending into a table only where the model has a section."""
    errors = []
    for key, value in data.items():
        path = [*parents, key]
        error, section = _walk(path)
        if isinstance(value, dict) and error is None and section is not None:
            errors.extend(toml_key_errors(value, tuple(path)))
        elif error := field_path_error(path):
            errors.append(f"toml {error}")
    return errors


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """Only ``env``'s FINPULSE_* variables set, for the duration."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(PREFIX)}
    for key in saved:
        del os.environ[key]
    os.environ.update(env)
    try:
        yield
    finally:
        for key in env:
            os.environ.pop(key, None)
        os.environ.update(saved)


def role_errors(role: Role) -> tuple[list[str], Settings | None]:
    """Unknown keys first; only a role whose keys all exist is loaded (values checked)."""
    errors = list(role.problems)
    errors += [e for name in role.env if name != CONFIG_ENV if (e := env_name_error(name))]
    if role.toml is not None:
        try:
            errors += toml_key_errors(tomllib.loads(role.toml))
        except tomllib.TOMLDecodeError as exc:
            errors.append(f"toml: {exc}")
    if CONFIG_ENV in role.env and role.toml is None:
        errors.append(f"{CONFIG_ENV}={role.env[CONFIG_ENV]} but no such file is mounted")
    if errors:
        return errors, None
    env = {k: v for k, v in role.env.items() if k != CONFIG_ENV}
    with tempfile.TemporaryDirectory() as tmp, _environment(env):
        path = None
        if role.toml is not None:
            path = Path(tmp, "finpulse.toml")
            path.write_text(role.toml)
        try:
            return [], load_settings(path)
        except ConfigError as exc:
            return [str(exc)], None


# --- where each kind of deploy file keeps its settings ---------------------------------------


def dockerfile_env(path: Path) -> dict[str, str]:
    """FINPULSE_* variables the image's ENV instructions set (all stages: both targets)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    env: dict[str, str] = {}
    for line in text.splitlines():
        words = line.strip().split(None, 1)
        if len(words) == 2 and words[0].upper() == "ENV":
            for item in shlex.split(words[1]):
                key, _, value = item.partition("=")
                if key.startswith(PREFIX):
                    env[key] = value
    return env


def dockerfile_workdir(text: str) -> PurePosixPath:
    r"""The WORKDIR the last stage runs in (a stage inherits it from the stage it is FROM).

    >>> dockerfile_workdir("FROM x AS a\nWORKDIR /srv\nFROM y\nWORKDIR /b\nFROM a\nWORKDIR s")
    PurePosixPath('/srv/s')
    """
    text = re.sub(r"\\\n", " ", text)
    stages: dict[str, PurePosixPath] = {}
    workdir, stage = PurePosixPath("/"), None
    for line in text.splitlines():
        words = [w for w in line.split() if not w.startswith("--")]
        if len(words) >= 2 and words[0].upper() == "FROM":
            workdir = stages.get(words[1].lower(), PurePosixPath("/"))
            stage = words[3].lower() if len(words) >= 4 and words[2].upper() == "AS" else None
        elif len(words) >= 2 and words[0].upper() == "WORKDIR":
            workdir = workdir / words[1]
        if stage:
            stages[stage] = workdir
    return workdir


_INTERPOLATION = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)")


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's $VAR, ${VAR}, ${VAR:-default}, ${VAR:?error} and $$; required VARs need .env.

    >>> interpolate("${A}:${B:-b}:$$C", {"A": "a"})
    'a:b:$C'
    """

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        if name in variables:
            return variables[name]
        if (match.group(2) or "").endswith("-"):
            return match.group(3)
        raise KeyError(f"${{{name}}} is used but not defined in the example .env")

    return _INTERPOLATION.sub(replace, value)


def read_dotenv(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines())
    return {k.strip(): v[0].strip() for k, *v in pairs if v and not k.lstrip().startswith("#")}


def compose_roles(path: Path, dotenv: Path, image_env: dict[str, str]) -> list[Role]:
    """Each compose service that runs the finpulse image, with env and mounted config."""
    doc = yaml.safe_load(path.read_text())
    variables = read_dotenv(dotenv)
    roles = []
    for name, service in doc["services"].items():
        if not str(service.get("image", "")).startswith("finpulse"):
            continue
        raw = service.get("environment", {})
        if isinstance(raw, list):
            raw = dict(item.split("=", 1) for item in raw)
        role = Role(f"compose/{name}", dict(image_env))
        role.command = (service.get("command") or [None])[0]
        role.mounts = _compose_mounts(service, path.parent, variables)
        for key, value in raw.items():
            try:
                role.env[key] = interpolate(str(value), variables)
            except KeyError as exc:
                role.problems.append(f"env {key}: {exc.args[0]}")
        config = role.env.get(CONFIG_ENV)
        for volume in service.get("volumes", []):
            source, _, rest = volume.partition(":")
            if config and rest.split(":")[0] == config:
                role.toml = (path.parent / interpolate(source, variables)).read_text()
        roles.append(role)
    return roles


def _compose_mounts(
    service: dict, folder: Path, variables: dict[str, str]
) -> dict[PurePosixPath, Mount]:
    """Named volumes and bind mounts persist (one host: two services may share either)."""
    mounts: dict[PurePosixPath, Mount] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            kind, source, target = volume.get("type"), volume.get("source", ""), volume["target"]
        else:
            source, _, rest = interpolate(volume, variables).partition(":")
            target = rest.split(":")[0]
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        if kind == "bind":
            source = str((folder / source).resolve())
        mounts[PurePosixPath(target)] = (f"{kind} {source}", kind in ("bind", "volume"))
    return mounts


_ENV_SOURCES = {"secretRef": "Secret", "configMapRef": "ConfigMap"}


def _container_roles(doc: dict, objects: dict, image_env: dict[str, str]) -> Iterator[Role]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod = spec["template"]["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    owner = f"{doc['kind']}/{doc['metadata']['name']}"
    for container in pod["containers"]:
        name = owner if len(pod["containers"]) == 1 else f"{owner}/{container['name']}"
        role = Role(name, dict(image_env), owner=owner)
        role.command = (container.get("args") or [None])[0]
        # A volume is shared only within the Pod (one node): two Pods never share SQLite.
        role.mounts = {
            PurePosixPath(m["mountPath"]): (
                f"{owner} volume {m['name']}",
                "persistentVolumeClaim" in volumes.get(m["name"], {}),
            )
            for m in container.get("volumeMounts", [])
        }
        for source in container.get("envFrom", []):
            kind, ref = next((k, source[r]) for r, k in _ENV_SOURCES.items() if r in source)
            obj = objects.get((kind, ref["name"]))
            if obj is None and not ref.get("optional"):
                role.problems.append(f"envFrom {kind} {ref['name']} is not in the manifests")
            data = {**(obj or {}).get("data", {}), **(obj or {}).get("stringData", {})}
            role.env.update({k: str(v) for k, v in data.items()})
        for item in container.get("env", []):
            role.env[item["name"]] = str(item.get("value", SECRET_PLACEHOLDER))
        if config := role.env.get(CONFIG_ENV):
            role.toml = _mounted_config(PurePosixPath(config), container, volumes, objects)
        yield role


def _mounted_config(
    config: PurePosixPath, container: dict, volumes: dict, objects: dict
) -> str | None:
    for mount in container.get("volumeMounts", []):
        target = PurePosixPath(mount["mountPath"])
        key = mount.get("subPath") if target == config else config.name
        if target not in (config, config.parent):
            continue
        ref = volumes[mount["name"]].get("configMap")
        configmap = objects.get(("ConfigMap", ref["name"])) if ref else None
        if configmap and key in configmap.get("data", {}):
            return configmap["data"][key]
    return None


def load_manifests(paths: list[Path]) -> list[dict]:
    return [d for p in paths for d in yaml.safe_load_all(p.read_text()) if d]


def k8s_roles(docs: list[dict], image_env: dict[str, str]) -> list[Role]:
    """The role of each container of every Deployment and CronJob."""
    objects = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    kinds = ("Deployment", "CronJob")
    return [r for d in docs if d["kind"] in kinds for r in _container_roles(d, objects, image_env)]


def replica_errors(docs: list[dict], roles: list[Role]) -> list[str]:
    """Workers beyond the partition count sit idle: replicas and HPA bounds must not exceed it."""
    workers = {r.owner: r.settings for r in roles if r.command == "worker" and r.settings}
    errors = []
    for doc in docs:
        if doc["kind"] == "HorizontalPodAutoscaler":
            ref = doc["spec"]["scaleTargetRef"]
            target = f"{ref['kind']}/{ref['name']}"
            counts = {"maxReplicas": doc["spec"]["maxReplicas"]}
        elif doc["kind"] == "Deployment":
            target = f"Deployment/{doc['metadata']['name']}"
            counts = {"replicas": doc["spec"].get("replicas", 1)}
        else:
            continue
        settings = workers.get(target)
        if settings is None:
            continue
        for what, count in counts.items():
            if count > settings.kafka.partitions:
                errors.append(
                    f"{doc['kind']}/{doc['metadata']['name']}: {what}={count} exceeds "
                    f"kafka.partitions={settings.kafka.partitions}"
                )
    return errors


def singleton_errors(docs: list[dict], roles: list[Role]) -> list[str]:
    """The alerter is one engine: never several replicas, an autoscaler, or a rolling overlap.

    Kubernetes documents are manifests; compose services (``compose/...``) are given as docs
    ``{"kind": "compose", "metadata": {"name": ...}, "spec": <service>}``.
    """
    owners = {r.owner for r in roles if r.command == "alerter"}
    errors = []
    for doc in docs:
        owner = f"{doc['kind']}/{doc['metadata']['name']}"
        spec = doc.get("spec", {})
        if doc["kind"] == "HorizontalPodAutoscaler":
            ref = spec["scaleTargetRef"]
            if f"{ref['kind']}/{ref['name']}" in owners:
                errors.append(f"{owner} scales the alerter {ref['kind']}/{ref['name']}")
            continue
        if owner not in owners:
            continue
        if doc["kind"] == "compose":
            replicas = spec.get("deploy", {}).get("replicas", spec.get("scale", 1))
        else:
            replicas = spec.get("replicas", 1)
        if replicas != 1:
            errors.append(f"{owner}: runs the alerter, so replicas must be 1, not {replicas}")
        if doc["kind"] == "Deployment" and spec.get("strategy", {}).get("type") != "Recreate":
            errors.append(f"{owner}: runs the alerter, so strategy must be Recreate")
        if doc["kind"] not in ("Deployment", "compose"):
            errors.append(f"{owner}: run the alerter as a Deployment, not a {doc['kind']}")
    return errors


def _volume_of(path: PurePosixPath, mounts: dict[PurePosixPath, Mount]) -> Mount | None:
    """The mount that holds ``path`` (the deepest mount point above it), if any."""
    above = [m for m in mounts if path.is_relative_to(m)]
    return mounts[max(above, key=lambda m: len(m.parts))] if above else None


def state_errors(roles: list[Role], workdir: PurePosixPath) -> list[str]:
    """One alerter, its alerts.state_db persistent, and every serve reading that same file."""
    alerters = [r for r in roles if r.command == "alerter"]
    if len(alerters) != 1:
        names = ", ".join(r.name for r in alerters) or "none"
        return [f"exactly one alerter role is needed, found {len(alerters)} ({names})"]
    alerter = alerters[0]
    if alerter.settings is None:
        return []  # its config errors are reported already
    db = workdir / alerter.settings.alerts.state_db
    volume = _volume_of(db, alerter.mounts)
    errors = []
    if volume is None or not volume[1]:
        where = volume[0] if volume else "the container's filesystem"
        errors.append(f"{alerter.name}: alerts.state_db {db} is on {where}, not persistent")
    for serve in (r for r in roles if r.command == "serve" and r.settings is not None):
        path = workdir / serve.settings.alerts.state_db
        theirs = _volume_of(path, serve.mounts)
        if path != db or theirs != volume:
            errors.append(
                f"{serve.name}: reads alerts.state_db {path} on {theirs and theirs[0]}, but "
                f"{alerter.name} writes {db} on {volume and volume[0]}: mount the same volume "
                f"(in Kubernetes, in the same Pod) so the dashboard sees the alerts"
            )
    return errors


def check(roles: list[Role]) -> list[str]:
    """Print one line per role, loading each role's settings into it; return the errors."""
    errors: list[str] = []
    for role in roles:
        problems, role.settings = role_errors(role)
        errors += [f"{role.name}: {p}" for p in problems]
        keys = len([k for k in role.env if k != CONFIG_ENV])
        toml = "no TOML" if role.toml is None else "TOML"
        print(f"{'FAIL' if problems else 'ok':4} {role.name} ({role.command}): {keys} env, {toml}")
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dockerfile", type=Path, required=True)
    parser.add_argument("--compose", type=Path, required=True)
    parser.add_argument("--compose-env", type=Path, required=True, help="the example .env")
    parser.add_argument(
        "--k8s", type=Path, action="append", default=[], help="one rendered overlay (repeatable)"
    )
    parser.add_argument(
        "--k8s-extra", type=Path, action="append", default=[],
        help="manifests applied beside every overlay, e.g. the example Secret",
    )  # fmt: skip
    args = parser.parse_args(argv)

    image_env = dockerfile_env(args.dockerfile)
    workdir = dockerfile_workdir(args.dockerfile.read_text())
    errors = [f"{args.dockerfile}: {e}" for n in image_env if (e := env_name_error(n))]
    roles = compose_roles(args.compose, args.compose_env, image_env)
    services = yaml.safe_load(args.compose.read_text())["services"]
    docs = [{"kind": "compose", "metadata": {"name": n}, "spec": s} for n, s in services.items()]
    found = check(roles) + singleton_errors(docs, roles) + state_errors(roles, workdir)
    errors += [f"{args.compose}: {e}" for e in found]
    total = len(roles)
    for overlay in args.k8s:
        print(f"-- {overlay}")
        docs = load_manifests([overlay, *args.k8s_extra])
        roles = k8s_roles(docs, image_env)
        found = check(roles) + replica_errors(docs, roles) + singleton_errors(docs, roles)
        errors += [f"{overlay}: {e}" for e in found + state_errors(roles, workdir)]
        total += len(roles)
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    print(f"config keys: {total} roles checked, {len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
