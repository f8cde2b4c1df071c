"""A detector and a notifier added from outside the package, each one class, used by name."""

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from alerts.config import AlertsSettings
from alerts.detectors import DETECTORS, Detector
from alerts.engine import AlertEngine
from alerts.notifiers import NOTIFIERS, Notifier, NotifierSettings
from alerts.registry import DuplicateNameError
from finpulse.contracts import Alert, AlertState, RateWindow

T0 = datetime(2026, 1, 5, tzinfo=UTC)
W = timedelta(seconds=300)


class OverLevelDetector(Detector):
    """Negatives above a fixed ``level``: the score is the excess itself."""

    name = "test_over_level"

    def __init__(self, *, level: float = 5.0, **gates: Any) -> None:
        gates.setdefault("accumulate", False)
        super().__init__(**gates)
        self.level = level
        self.windows = 0

    def _evaluate(self, ts: float, negative: int, total: int) -> tuple[float, float, float]:
        return negative - self.level, float(negative), self.level

    def _learn(self, ts: float, negative: int, total: int, weight: float) -> None:
        self.windows += 1

    def _model_state(self) -> dict[str, Any]:
        return {"windows": self.windows}

    def _load_model_state(self, state: dict[str, Any]) -> None:
        self.windows = int(state["windows"])


class JsonLinesConfig(NotifierSettings):
    path: Path


class JsonLinesNotifier(Notifier):
    """Appends one JSON line per alert state change to a file."""

    type = "test_json_lines"
    Config = JsonLinesConfig

    def send(self, alert: Alert) -> None:
        line = {"id": alert.id, "state": str(alert.state), "key": alert.key, "score": alert.score}
        with self.config.path.open("a") as out:
            out.write(json.dumps(line) + "\n")


def _settings(tmp_path: Path, **notifier: Any) -> AlertsSettings:
    return AlertsSettings(
        state_db=tmp_path / "alerts.db",
        rules=[
            {
                "name": "over",
                "scope": "topic",
                "detector": "test_over_level",
                "params": {"level": 5, "threshold": 3, "warmup": 2, "min_negative": 0},
                "notifiers": ["lines"],
            }
        ],
        notifiers={"lines": {"type": "test_json_lines", **notifier}},
    )


def _window(i: int, negative: int) -> RateWindow:
    start = T0 + i * W
    return RateWindow(
        scope="topic", key="earnings", start=start, end=start + W, total=20, negative=negative
    )


def test_plugins_defined_here_page_through_the_engine(tmp_path):
    sent = tmp_path / "sent.jsonl"
    engine = AlertEngine.from_settings(_settings(tmp_path, path=str(sent)), CollectorRegistry())
    out = []
    for i, negative in enumerate([2, 3, 2, 2, 12, 2, 2, 2, 2]):
        out += engine.process(_window(i, negative), now=T0 + (i + 1) * W)
        engine.deliver_pending(now=T0 + (i + 1) * W)
    assert [(a.state, a.detector, a.score) for a in out] == [
        (AlertState.FIRING, "test_over_level", 7.0),
        (AlertState.RESOLVED, "test_over_level", 7.0),
    ]
    lines = [json.loads(line) for line in sent.read_text().splitlines()]
    assert [(x["state"], x["id"]) for x in lines] == [
        ("firing", out[0].id),
        ("resolved", out[0].id),
    ]
    engine.close()


def test_a_plugin_config_is_checked_by_its_own_schema(tmp_path):
    with pytest.raises(
        ValidationError, match=r"notifier 'lines' \(test_json_lines\): path: Field required"
    ):
        _settings(tmp_path)
    with pytest.raises(ValidationError, match="colour: Extra inputs are not permitted"):
        _settings(tmp_path, path="x.jsonl", colour="red")
    rule = {"name": "r", "scope": "topic", "detector": "test_over_level"}
    with pytest.raises(ValidationError, match=r"has no parameter\(s\) \['levle'\]"):
        AlertsSettings(rules=[{**rule, "params": {"levle": 3}}])
    with pytest.raises(ValidationError, match="'test_over_level': level: Input should be a valid"):
        AlertsSettings(rules=[{**rule, "params": {"level": "high"}}])
    assert AlertsSettings(rules=[{**rule, "params": {"level": 3}}]).rules[0].params == {"level": 3}
    with pytest.raises(
        ValidationError, match="unknown notifier type 'nope'; known: alertmanager, email"
    ):
        AlertsSettings(notifiers={"x": {"type": "nope"}})


def test_a_taken_name_is_refused_naming_both_classes():
    with pytest.raises(DuplicateNameError) as err:

        class Mine(OverLevelDetector):
            name = "range"

    assert str(err.value) == (
        "detector 'range' is already registered by alerts.detectors.range.RangeDetector; "
        "test_alerts_plugins.test_a_taken_name_is_refused_naming_both_classes.<locals>.Mine "
        "needs another name"
    )
    with pytest.raises(DuplicateNameError, match="notifier type 'test_json_lines' is already"):

        class Again(JsonLinesNotifier):
            type = "test_json_lines"

    assert DETECTORS["range"].__name__ == "RangeDetector"
    assert NOTIFIERS["test_json_lines"] is JsonLinesNotifier


def test_an_unimplemented_hook_fails_at_definition_or_creation():
    with pytest.raises(
        TypeError,
        match=r"detector 'test_lazy' \(.*Lazy\) must implement: _learn, _load_model_state",
    ):

        class Lazy(Detector):
            name = "test_lazy"

            def _evaluate(self, ts: float, negative: int, total: int) -> tuple[float, float, float]:
                return 0.0, 0.0, 0.0

    assert "test_lazy" not in DETECTORS

    class HalfDone(Detector):  # no name: an intermediate base may stay abstract...
        def _learn(self, ts: float, negative: int, total: int, weight: float) -> None: ...

    with pytest.raises(TypeError, match="abstract"):  # ...but cannot be instantiated
        HalfDone()

    class Silent(Notifier): ...

    with pytest.raises(TypeError, match="abstract method send"):
        Silent("silent", None)


def test_a_plugin_module_named_in_the_config_registers_on_load(tmp_path, monkeypatch):
    (tmp_path / "finpulse_test_plugin.py").write_text(
        textwrap.dedent(
            """
            from alerts.detectors.ratio import RatioDetector

            class TwiceDetector(RatioDetector):
                name = "test_twice"
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    rule = {"name": "r", "scope": "topic", "detector": "test_twice", "params": {"spike_height": 2}}
    with pytest.raises(ValidationError, match="unknown detector 'test_twice'"):
        AlertsSettings(rules=[rule])
    settings = AlertsSettings(plugins=["finpulse_test_plugin"], rules=[rule])
    assert DETECTORS["test_twice"].__module__ == "finpulse_test_plugin"
    assert settings.rules[0].detector == "test_twice"
    with pytest.raises(ValidationError, match="plugin module 'no_such_plugin' cannot be imported"):
        AlertsSettings(plugins=["no_such_plugin"])
