"""One-file model bundles: ``finpulse models export`` and ``finpulse models import``.

A bundle is a gzipped tar: ``manifest.json`` first (format, version, base identity and the
sha256 of every file), then the model directory's files under ``<version>/``. Import
checks every file against the manifest, the manifest's base against the model's, and that
the base encoder an adapter needs is installed, in a scratch directory inside the
registry; only a bundle that passes every check is moved into place (an atomic rename), so
a refused bundle changes nothing. A LoRA version is a few MB; a ``full`` one carries its
encoder (~90 MB).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from model.registry import MODEL_FILE, ORIGIN_FILE, ModelInfo, Registry

FORMAT = "finpulse-bundle/1"
MANIFEST = "manifest.json"
DOWNLOAD_TIMEOUT_S = 30.0
DOWNLOAD_ATTEMPTS = 3
MAX_DOWNLOAD_BYTES = 2 << 30
# What export's GzipFile(filename="", mtime=0) writes: magic, deflate, no flags, time 0,
# best compression, unknown OS.
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"


class BundleError(ValueError):
    """A bundle that cannot be exported or imported; the message says why, in one line."""


def _files(path: Path) -> list[str]:
    """The model directory's files (posix paths), without the local-only origin record."""
    return sorted(
        p.relative_to(path).as_posix()
        for p in path.rglob("*")
        if p.is_file() and p.name != ORIGIN_FILE
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def export_bundle(info: ModelInfo, out: Path) -> Path:
    """Write ``info``'s model as one reproducible file (same model, same bytes)."""
    files = {rel: (info.path / rel).read_bytes() for rel in _files(info.path)}
    manifest = {
        "format": FORMAT,
        "version": info.version,
        "method": info.method,
        "base": info.meta.get("base"),
        "files": {rel: _sha256(data) for rel, data in files.items()},
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
    with (
        tmp.open("wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz,
    ):
        gz.write(_pack(info.version, manifest_bytes, files))
    os.replace(tmp, out)
    return out


def _pack(version: str, manifest: bytes, files: dict[str, bytes]) -> bytes:
    """The bundle's tar: the manifest, then the files in name order, fixed metadata."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [(MANIFEST, manifest)] + [
            (f"{version}/{rel}", files[rel]) for rel in sorted(files)
        ]:
            member = tarfile.TarInfo(name)
            member.size, member.mode, member.mtime = len(data), 0o644, 0
            tar.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def _unzip(path: Path) -> bytes:
    """The tar inside a bundle; the gzip header must be the one export writes and the
    stream must pass its CRC, so no byte of the file goes unchecked."""
    raw = path.read_bytes()
    if raw[:10] != GZIP_HEADER:
        raise BundleError(f"{path}: not a finpulse bundle (unexpected gzip header)")
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise BundleError(f"{path}: damaged archive ({exc})") from None


def fetch(source: str, scratch: Path) -> Path:
    """A local bundle path: ``source`` itself, or an http(s) URL downloaded into ``scratch``."""
    if not source.startswith(("http://", "https://")):
        path = Path(source)
        if not path.is_file():
            raise BundleError(f"bundle not found: {source}")
        return path
    import httpx

    target = scratch / "download.tar.gz"
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            with httpx.stream(
                "GET", source, timeout=DOWNLOAD_TIMEOUT_S, follow_redirects=True
            ) as response:
                response.raise_for_status()
                size = 0
                with target.open("wb") as fh:
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > MAX_DOWNLOAD_BYTES:
                            raise BundleError(f"{source}: larger than {MAX_DOWNLOAD_BYTES} bytes")
                        fh.write(chunk)
            return target
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code < 500 or attempt == DOWNLOAD_ATTEMPTS:
                raise BundleError(f"{source}: HTTP {exc.response.status_code}") from None
        except httpx.HTTPError as exc:
            if attempt == DOWNLOAD_ATTEMPTS:
                raise BundleError(f"{source}: {type(exc).__name__}: {exc}") from None
        time.sleep(attempt)
    raise AssertionError("unreachable")


def _read_verified(path: Path, into: Path) -> dict[str, Any]:
    """Unpack a bundle into ``into`` (an empty directory), checking it; returns its manifest.

    Every file must match its sha256 in the manifest, and the whole tar must be exactly what
    export writes for that manifest and those files (so tar headers and padding are checked).
    """
    packed = _unzip(path)
    try:
        with tarfile.open(fileobj=io.BytesIO(packed), mode="r:") as tar:
            members = tar.getmembers()
            if not members or members[0].name != MANIFEST:
                raise BundleError(f"{path}: no {MANIFEST} first; not a finpulse bundle")
            manifest_bytes = _read(tar, members[0])
            try:
                manifest = json.loads(manifest_bytes)
            except ValueError:
                raise BundleError(f"{path}: {MANIFEST} is not valid JSON") from None
            if manifest.get("format") != FORMAT:
                raise BundleError(f"{path}: unknown bundle format {manifest.get('format')!r}")
            version, expected = str(manifest.get("version", "")), manifest.get("files") or {}
            if not version or "/" in version or version.startswith("."):
                raise BundleError(f"{path}: bad version name {version!r} in the manifest")
            files = {}
            for member in members[1:]:
                rel = _relative(member, version, path)
                if rel not in expected:
                    raise BundleError(f"{path}: {member.name} is not listed in the manifest")
                files[rel] = _read(tar, member)
                if _sha256(files[rel]) != expected[rel]:
                    raise BundleError(f"{path}: {rel} does not match its sha256 in the manifest")
            if missing := sorted(set(expected) - set(files)):
                raise BundleError(f"{path}: missing files listed in the manifest: {missing[:3]}")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"{path}: damaged archive ({exc})") from None
    if _pack(version, manifest_bytes, files) != packed:
        raise BundleError(f"{path}: archive metadata differs from what export writes")
    for rel, data in files.items():
        target = into / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return manifest


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    fh = tar.extractfile(member)
    if fh is None:
        raise BundleError(f"{member.name}: not a regular file")
    try:
        return fh.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"{member.name}: damaged archive ({exc})") from None


def _relative(member: tarfile.TarInfo, version: str, path: Path) -> str:
    name = PurePosixPath(member.name)
    if not member.isfile() or name.parts[0] != version or ".." in name.parts:
        raise BundleError(f"{path}: unexpected member {member.name!r}")
    return PurePosixPath(*name.parts[1:]).as_posix()


def import_bundle(source: str, registry: Registry, *, promote: bool = False) -> ModelInfo:
    """Verify a bundle (file or URL) and register its model; on any error nothing changes."""
    from model import lora
    from model.encoder import BaseModelError

    registry.root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".import-", dir=registry.root))
    try:
        path = fetch(source, scratch)
        unpacked = scratch / "model"
        unpacked.mkdir()
        manifest = _read_verified(path, unpacked)
        version = manifest["version"]
        meta = json.loads((unpacked / MODEL_FILE).read_text())
        if meta.get("version") != version or meta.get("base") != manifest.get("base"):
            raise BundleError(f"{source}: model.json does not match the manifest")
        if meta.get("base"):
            try:
                lora.find_base(meta["base"])
            except BaseModelError as exc:
                raise BundleError(f"{source}: {exc}") from None
        if (registry.root / version).exists():
            raise BundleError(f"{version} is already in {registry.root}")
        origin = {
            "kind": "imported",
            "from": source,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "bundle_sha256": lora.file_sha256(path),
        }
        (unpacked / ORIGIN_FILE).write_text(json.dumps(origin, indent=2))
        info = ModelInfo.read(unpacked)
        if promote and info.generated_data:
            raise BundleError(f"{version} was trained on generated data; it cannot be champion")
        os.rename(unpacked, registry.root / version)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return registry.promote(version) if promote else registry.resolve(version)
