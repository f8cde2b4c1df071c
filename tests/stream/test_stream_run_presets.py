"""`finpulse run --embedded --preset NAME`: the embedded pipeline on real public sources."""

from typer.testing import CliRunner

import stream.cli
from app.cli import app
from stream.embedded import RunStats


def _env(tmp_path, **extra):
    return {
        "FINPULSE_STORE__SQLITE_PATH": str(tmp_path / "finpulse.db"),
        "FINPULSE_ALERTS__STATE_DB": str(tmp_path / "alerts.db"),
        "FINPULSE_MODEL__REGISTRY_DIR": str(tmp_path / "no-models"),
        **extra,
    }


def test_the_named_presets_replace_the_configured_sources(tmp_path, monkeypatch):
    seen = {}

    async def fake_run(settings, **kwargs):  # the pipeline itself is tested elsewhere
        seen["sources"] = [s.name for s in settings.ingest.sources]
        return RunStats()

    monkeypatch.setattr(stream.cli, "run_embedded", fake_run)
    env = _env(tmp_path, FINPULSE_INGEST__CONTACT="risk-desk@example.com")
    r = CliRunner().invoke(app, ["run", "--embedded", "--preset", "fed-press", "-p", "ecb-press"],
                           env=env)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert seen["sources"] == ["fed-press", "ecb-press"]


def test_an_unknown_preset_is_one_line_naming_the_known_ones(tmp_path):
    r = CliRunner().invoke(app, ["run", "--embedded", "--preset", "nosuch"], env=_env(tmp_path))
    assert r.exit_code == 2, r.output
    assert "unknown preset 'nosuch' (known: financial," in r.output
    assert "Traceback" not in r.output


def test_a_preset_that_needs_a_contact_says_which_setting(tmp_path):
    r = CliRunner().invoke(app, ["run", "--embedded", "--preset", "sec-press"], env=_env(tmp_path))
    assert r.exit_code == 2, r.output
    assert "FINPULSE_INGEST__CONTACT" in r.output


def test_a_preset_with_a_replay_is_refused(tmp_path):
    replay = tmp_path / "r.csv"
    replay.write_text("text\nhello\n")
    r = CliRunner().invoke(app, ["run", "--embedded", "--preset", "fed-press", "--replay",
                                 str(replay)], env=_env(tmp_path))  # fmt: skip
    assert r.exit_code == 2, r.output
    assert "cannot be used with --replay" in r.output
