"""Export / import of one-file bundles: verified byte for byte, refused whole."""

import gzip
import json
import tarfile

import pytest

from model.bundle import MANIFEST, BundleError, _pack, export_bundle, import_bundle
from model.registry import Registry
from tools.model.tiny import train_tiny_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny LoRA model exported from one registry: (model info, bundle path)."""
    root = tmp_path_factory.mktemp("source")
    info = train_tiny_model(root, method="lora", promote=False)
    return info, export_bundle(info, root / "bundle.tar.gz")


def _registry(tmp_path):
    return Registry(tmp_path / "models", shipped=None)


def _rewrite(bundle, out, edit):
    """A copy of ``bundle``, as export would write it, with ``edit(name, data) -> data``
    applied to every member: only the edit differs, so only its check can refuse it."""
    with tarfile.open(bundle) as src:
        items = [(m.name, edit(m.name, src.extractfile(m).read())) for m in src.getmembers()]
    version = items[1][0].split("/")[0]
    files = {name.split("/", 1)[1]: data for name, data in items[1:]}
    with out.open("wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(_pack(version, items[0][1], files))
    return out


def test_round_trip_keeps_metrics_exactly(exported, tmp_path):
    info, bundle = exported
    registry = _registry(tmp_path)
    imported = import_bundle(str(bundle), registry)
    assert imported.version == info.version and imported.metrics == info.metrics
    assert imported.origin["kind"] == "imported" and imported.origin["from"] == str(bundle)
    assert registry.champion_version() is None  # registered, not champion
    assert [i.version for i in registry.list()] == [info.version]
    with pytest.raises(BundleError, match="already in"):
        import_bundle(str(bundle), registry)


def test_export_is_reproducible(exported, tmp_path):
    info, bundle = exported
    assert export_bundle(info, tmp_path / "again.tar.gz").read_bytes() == bundle.read_bytes()


def test_one_changed_byte_is_refused_and_nothing_registered(exported, tmp_path):
    _, bundle = exported

    def flip(name, data):
        if name.endswith("adapter.safetensors"):
            data = data[:-1] + bytes([data[-1] ^ 1])
        return data

    registry = _registry(tmp_path)
    with pytest.raises(BundleError, match=r"adapter\.safetensors does not match its sha256"):
        import_bundle(str(_rewrite(bundle, tmp_path / "bad.tar.gz", flip)), registry)
    assert list(registry.root.iterdir()) == []  # no version, no scratch left behind


@pytest.mark.parametrize("where", [5, 100, 0.5, -40, -3])
def test_any_changed_byte_is_refused(exported, tmp_path, where):
    """Header, compressed data, the end-of-archive blocks, the CRC: every byte is checked."""
    _, bundle = exported
    raw = bytearray(bundle.read_bytes())
    raw[int(where * len(raw)) if isinstance(where, float) else where] ^= 0x01
    (tmp_path / "damaged.tar.gz").write_bytes(bytes(raw))
    registry = _registry(tmp_path)
    with pytest.raises(BundleError):
        import_bundle(str(tmp_path / "damaged.tar.gz"), registry)
    assert list(registry.root.iterdir()) == []


def test_another_base_is_refused(exported, tmp_path):
    """A bundle consistent in itself, made for base weights this machine does not have."""
    import hashlib

    _, bundle = exported
    manifest = {}

    def rebase(name, data):
        if name == MANIFEST:
            manifest.update(json.loads(data))
            manifest["base"]["sha256"] = "0" * 64
        elif name.endswith("/model.json"):
            meta = json.loads(data)
            meta["base"]["sha256"] = "0" * 64
            data = json.dumps(meta).encode()
            manifest["files"]["model.json"] = hashlib.sha256(data).hexdigest()
        return data

    _rewrite(bundle, tmp_path / "first.tar.gz", rebase)  # collects the edited manifest

    def finish(name, data):
        return json.dumps(manifest).encode() if name == MANIFEST else rebase(name, data)

    registry = _registry(tmp_path)
    with pytest.raises(BundleError, match="needs the base encoder"):
        import_bundle(str(_rewrite(bundle, tmp_path / "rebased.tar.gz", finish)), registry)
    assert list(registry.root.iterdir()) == []


def test_not_a_bundle(tmp_path):
    (tmp_path / "x.tar.gz").write_bytes(gzip.compress(b"hello"))
    with pytest.raises(BundleError, match="not a finpulse bundle"):
        import_bundle(str(tmp_path / "x.tar.gz"), _registry(tmp_path))
    with pytest.raises(BundleError, match="not found"):
        import_bundle(str(tmp_path / "missing.tar.gz"), _registry(tmp_path))


def test_a_generated_data_model_is_not_promoted_on_import(exported, tmp_path):
    _, bundle = exported  # the tiny model's rows are generated
    registry = _registry(tmp_path)
    with pytest.raises(BundleError, match="generated data"):
        import_bundle(str(bundle), registry, promote=True)
    assert registry.list() == []
