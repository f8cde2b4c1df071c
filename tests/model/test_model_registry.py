import json
from datetime import UTC, datetime, timedelta

import pytest

from model.registry import ModelNotFoundError, PromotionError, Registry


def _fake_model(registry: Registry, method: str, at: datetime, metrics=None, data=None):
    path = registry.new_version_dir(method, now=at)
    (path / "metrics.json").write_text(json.dumps(metrics or {"headline": {}}))
    meta = {"version": path.name, "method": method, "created_at": at.isoformat()}
    (path / "model.json").write_text(json.dumps({**meta, **({"data": data} if data else {})}))
    return path


def test_list_resolve_promote(tmp_path):
    reg = Registry(tmp_path / "models", shipped=None)
    assert reg.list() == [] and reg.champion() is None and reg.champion_version() is None
    t0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    a = _fake_model(reg, "head", t0)
    b = _fake_model(reg, "full", t0 + timedelta(hours=1), {"headline": {"topic": {}}})
    (reg.root / "half-written").mkdir()  # no model.json: must not be listed
    assert [i.version for i in reg.list()] == [a.name, b.name]
    assert a.name == "20260102T030405-head"
    assert reg.resolve("latest").version == b.name
    assert reg.resolve(str(a)).path == a  # a path works too
    with pytest.raises(ModelNotFoundError, match="no champion"):
        reg.resolve("champion")
    info = reg.promote(a.name)
    assert info.method == "head"
    assert reg.champion_version() == a.name
    assert reg.resolve("champion").version == a.name
    reg.promote(b.name)
    assert reg.champion().version == b.name
    assert reg.champion().metrics == {"headline": {"topic": {}}}
    with pytest.raises(ModelNotFoundError, match="versions: "):
        reg.resolve("nope")


def test_same_second_versions_do_not_collide(tmp_path):
    reg = Registry(tmp_path)
    at = datetime(2026, 1, 2, tzinfo=UTC)
    assert reg.new_version_dir("head", now=at) != reg.new_version_dir("head", now=at)


def test_promote_refuses_model_outside_registry(tmp_path):
    other = Registry(tmp_path / "other")
    outside = _fake_model(other, "head", datetime(2026, 1, 2, tzinfo=UTC))
    with pytest.raises(ModelNotFoundError, match="not in registry"):
        Registry(tmp_path / "models").promote(str(outside))


def test_the_shipped_model_is_champion_until_one_is_promoted(tmp_path):
    at = datetime(2026, 1, 2, tzinfo=UTC)
    shipped = _fake_model(Registry(tmp_path / "package"), "lora", at)
    reg = Registry(tmp_path / "models", shipped=shipped)
    assert reg.champion_version() == shipped.name  # the registry has no CHAMPION file
    assert reg.resolve("champion").origin == {"kind": "shipped", "from": str(shipped)}
    assert reg.resolve(shipped.name).path == shipped
    own = _fake_model(reg, "full", at + timedelta(hours=1))
    assert [i.version for i in reg.list()] == [shipped.name, own.name]
    reg.promote(own.name)
    assert reg.champion_version() == own.name
    reg.promote(shipped.name)  # back to the shipped one, by name
    assert reg.champion_version() == shipped.name


def test_a_model_of_generated_data_is_never_promoted(tmp_path):
    reg = Registry(tmp_path, shipped=None)
    toy = _fake_model(reg, "head", datetime(2026, 1, 2, tzinfo=UTC), data={"generated": True})
    with pytest.raises(PromotionError, match="generated data"):
        reg.promote(toy.name)
    assert reg.champion_version() is None
    assert reg.promote(toy.name, allow_generated=True).generated_data  # tests ask explicitly


def test_decisions_are_appended(tmp_path):
    reg = Registry(tmp_path)
    reg.record_decision({"promoted": True, "challenger": "a"})
    reg.record_decision({"promoted": False, "challenger": "b"})
    assert [d["challenger"] for d in reg.decisions()] == ["a", "b"]
