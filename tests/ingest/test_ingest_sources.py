import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from ingest.config import IngestSettings
from ingest.sources.json_api import FieldMap, lookup, map_item
from ingest.sources.replay import ReplayOptions, ReplaySource


def test_lookup_dotted_paths():
    doc = {"a": {"b": [{"c": 1}, {"c": 2}]}, "n": None}
    assert lookup(doc, "a.b.1.c") == 2
    assert lookup(doc, "a.b.-1.c") == 2
    assert lookup(doc, "a.b.5.c") is None
    assert lookup(doc, "n.x") is None
    assert lookup(doc, "") is doc


def test_map_item_uses_configured_fields_and_tolerates_junk():
    fields = FieldMap(title="h", url="l", guid="id", body="s", published_at="t", tickers="sym")
    item = map_item(
        {"h": "Title", "l": "https://ex.com/x", "id": 7, "s": {"nested": 1}, "t": 1767225600,
         "sym": ["abc", "DEF"]},
        fields,
        source="api",
    )  # fmt: skip
    assert (item.title, item.url, item.guid, item.body) == ("Title", "https://ex.com/x", "7", None)
    assert item.tickers == ["abc", "DEF"]
    assert map_item("a string", fields, source="api").title is None


def test_source_config_is_validated_by_kind():
    s = IngestSettings.model_validate(
        {"sources": [{"name": "f", "url": "https://ex.com/rss"},  # kind defaults to rss
                     {"kind": "json_api", "name": "api", "url": "https://ex.com/api",
                      "items_path": "data.items", "fields": {"title": "headline"}}]}
    )  # fmt: skip
    assert [o.kind for o in s.sources] == ["rss", "json_api"]
    assert s.sources[1].fields.title == "headline"
    with pytest.raises(ValueError, match="unknown source kind"):
        IngestSettings.model_validate({"sources": [{"kind": "gopher", "name": "x"}]})
    with pytest.raises(ValueError, match="url"):
        IngestSettings.model_validate({"sources": [{"kind": "rss", "name": "x", "url": "ftp://x"}]})


class Ctx:
    """The bits of SourceContext a replay uses, with a fake clock."""

    def __init__(self):
        self.now, self.slept, self.errors = 0.0, [], []

    def clock(self):
        return self.now

    async def sleep(self, s):
        self.slept.append(s)
        self.now += s

    def on_error(self, source, kind, message):
        self.errors.append((kind, message))


def collect(options, ctx=None):
    ctx = ctx or Ctx()

    async def go():
        return [i async for i in ReplaySource(options, ctx).poll()]

    return asyncio.run(go()), ctx


def test_replay_csv_one_item_per_row_with_row_ids(tmp_path):
    f = tmp_path / "labeled.csv"
    f.write_text('text,label\n"$X up, same text",1\n"$X up, same text",1\n"multi\nline",0\n')
    items, _ = collect(ReplayOptions(path=f, label_column="label"))
    assert [i.guid for i in items] == ["1", "2", "3"]
    assert all(i.row_id and i.source == "replay:labeled.csv" for i in items)
    assert [i.extra["label"] for i in items] == ["1", "1", "0"]
    assert items[2].body == "multi\nline"


def test_replay_synthetic_timeline_and_rate(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("text\n" + "".join(f"row {n}\n" for n in range(5)))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    items, ctx = collect(ReplayOptions(path=f, rate=2.0, start=start))
    assert [i.published for i in items] == [start + timedelta(seconds=0.5 * n) for n in range(5)]
    assert sum(ctx.slept) == pytest.approx(2.0)  # 5 rows at 2/s: the last one 2 s after the first


def test_replay_jsonl_time_column_and_bad_lines(tmp_path):
    f = tmp_path / "archive.jsonl"
    rows = [{"title": "A", "text": "alpha", "ts": "2026-01-01T00:00:00Z", "url": "https://ex.com/a"},
            "not json", {"title": "B", "text": "beta", "ts": "2026-01-02T00:00:00Z"}]  # fmt: skip
    f.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n\n[1]\n")
    opts = ReplayOptions(
        path=f, title_column="title", time_column="ts", url_column="url", dedup=True
    )
    items, ctx = collect(opts)
    assert [(i.title, i.published, i.row_id) for i in items] == [
        ("A", "2026-01-01T00:00:00Z", False),
        ("B", "2026-01-02T00:00:00Z", False),
    ]
    assert [k for k, _ in ctx.errors] == ["parse", "parse"]  # a bad line and a non-object


def test_replay_missing_column_is_a_clear_error(tmp_path):
    from ingest.fetch import FetchError

    f = tmp_path / "x.csv"
    f.write_text("body,label\nhello,1\n")
    with pytest.raises(FetchError, match=r"no column \['text'\]"):
        collect(ReplayOptions(path=f))


def test_ingest_config_round_trips_through_toml(tmp_path):
    from app.settings import Settings, load_settings, to_toml

    settings = Settings(
        ingest={
            "sources": [
                {"name": "f", "url": "https://ex.com/rss", "fetch_pages": True},
                {"kind": "replay", "path": "data.csv", "rate": 5},
            ],
            "allow_private_addresses": ["10.1.2.0/24"],
            "watchlist": {"AAPL": ["Apple"]},
        }
    )
    path = tmp_path / "finpulse.toml"
    path.write_text(to_toml(settings))
    assert load_settings(path).ingest == settings.ingest
