import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from finpulse.contracts import (
    SCHEMA_VERSION,
    Alert,
    Article,
    ContractError,
    RateWindow,
    Scope,
    ScoredArticle,
    Sentiment,
    article_id,
    canonical_url,
    decode,
    encode,
)

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def make_article(**kw):
    fields = dict(
        source="reuters",
        url="https://www.reuters.com/markets/x?utm_source=tw#c",
        title="Bank shares slide",
        body="Lenders fell.",
        published_at=T0,
        fetched_at=T0 + timedelta(seconds=5),
        tickers=["$jpm", "GS", "jpm"],
    )
    fields.update(kw)
    return Article.create(**fields)


def test_article_round_trips_with_canonical_fields():
    a = make_article()
    assert a.url == "https://www.reuters.com/markets/x"
    assert a.tickers == ["GS", "JPM"]
    assert a.schema_version == SCHEMA_VERSION
    assert decode(Article, encode(a)) == a


def test_id_is_stable_across_tracking_params_and_fragments():
    a = make_article(url="https://www.reuters.com/markets/x")
    b = make_article(url="HTTPS://WWW.Reuters.com:443/markets/x?utm_medium=email&fbclid=1#top")
    assert a.id == b.id
    assert a.id != make_article(url="https://www.reuters.com/markets/y").id


def test_id_from_source_and_guid_when_no_url():
    a = Article.create(source="api", guid="42", title="t", published_at=T0)
    assert a.id == article_id(source="api", guid="42")
    assert a.id != article_id(source="other", guid="42")
    with pytest.raises(ValueError, match="needs a url"):
        article_id(source="api")


def test_canonical_url_keeps_meaningful_query_sorted():
    assert canonical_url("http://ex.com/p?b=2&utm_campaign=z&a=1") == "http://ex.com/p?a=1&b=2"
    assert canonical_url("http://ex.com:8080") == "http://ex.com:8080/"


@pytest.mark.parametrize("url", ["ftp://ex.com/a", "javascript:alert(1)", "file:///etc/passwd"])
def test_only_http_urls(url):
    with pytest.raises(ContractError) as exc:
        decode(Article, json.dumps(_raw(url=url)))
    assert exc.value.field == "url"
    assert "http(s)" in str(exc.value)


def _raw(**kw):
    raw = {"id": "abc", "source": "s", "title": "t", "published_at": "2026-03-02T14:30:00Z"}
    raw.update(kw)
    return raw


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        (_raw(published_at="yesterday"), "published_at", "datetime"),
        (_raw(published_at="2026-03-02T14:30:00"), "published_at", "timezone"),
        ({k: v for k, v in _raw().items() if k != "title"}, "title", "required"),
        (_raw(title=""), "title", "at least 1"),
        (_raw(tickers="AAPL"), "tickers", "array"),
        (_raw(colour="red"), "colour", "not permitted"),
        (_raw(schema_version="2.0"), "schema_version", "newer major"),
        (_raw(schema_version=2), "schema_version", "newer major"),
        (_raw(schema_version="2.0", colour="red"), "schema_version", "newer major"),
        (_raw(schema_version=0), "schema_version", ">= 1"),
        (_raw(schema_version="one"), "schema_version", "MAJOR.MINOR"),
        (_raw(schema_version=1.5), "schema_version", "MAJOR.MINOR"),
        (_raw(schema_version="1.1", title=""), "title", "at least 1"),
    ],
)
def test_malformed_article_names_the_field(raw, field, words):
    with pytest.raises(ContractError) as exc:
        decode(Article, json.dumps(raw))
    assert exc.value.field == field
    assert words in exc.value.message
    assert str(exc.value).startswith(f"Article.{field}: ")


def test_an_integer_schema_version_from_older_finpulse_reads_as_its_major():
    assert decode(Article, json.dumps(_raw(schema_version=1))).schema_version == "1.0"
    assert SCHEMA_VERSION == "1.0"  # what this code writes: older (integer) readers accept it


def test_a_newer_minor_is_read_without_the_fields_it_added():
    """A rolling upgrade: a producer one minor ahead adds optional fields, here also inside
    the nested evidence; this reader keeps everything it knows and drops the rest."""
    window = {
        "schema_version": "1.7",
        "scope": "ticker",
        "key": "ACME",
        "start": "2026-03-02T14:30:00Z",
        "end": "2026-03-02T14:35:00Z",
        "total": 3,
        "negative": 1,
        "region": "emea",
        "evidence": [{"id": "a", "title": "Acme falls", "negative_prob": 0.9, "lang": "en"}],
    }
    w = decode(RateWindow, json.dumps(window))
    assert (w.schema_version, w.key, w.total, w.negative) == ("1.7", "ACME", 3, 1)
    assert w.evidence[0].title == "Acme falls"
    assert "region" not in w.model_dump()


def test_an_unknown_field_at_a_known_version_is_still_a_typo():
    for version in ("1.0", 1, None):
        raw = _raw(titel="oops") if version is None else _raw(titel="oops", schema_version=version)
        with pytest.raises(ContractError, match=r"Article\.titel: .*not permitted"):
            decode(Article, json.dumps(raw))


def test_not_json_at_all():
    with pytest.raises(ContractError, match="not valid JSON"):
        decode(Article, b"\xff\xfe{not json")


def test_timestamps_normalised_to_utc():
    a = make_article(published_at=datetime(2026, 3, 2, 9, 30, tzinfo=timezone(timedelta(hours=-5))))
    assert a.published_at == T0
    assert a.published_at.tzinfo == UTC


def test_text_is_title_plus_lead():
    assert make_article(body="").text == "Bank shares slide"
    assert make_article(body="x" * 2000).text == "Bank shares slide. " + "x" * 500


def scored(**kw):
    fields = dict(
        topic="Financials",
        topic_probs={"Financials": 0.9, "Macro": 0.1},
        sentiment="negative",
        sentiment_probs={"negative": 0.8, "neutral": 0.1, "positive": 0.1},
        model_version="v1",
    )
    fields.update(kw)
    return ScoredArticle.from_article(make_article(), **fields)


def test_scored_article_round_trip_and_scope_keys():
    s = scored()
    assert s.sentiment is Sentiment.NEGATIVE
    assert decode(ScoredArticle, encode(s)) == s
    assert s.scope_keys() == [
        (Scope.GLOBAL, "all"),
        (Scope.TOPIC, "Financials"),
        (Scope.SOURCE, "reuters"),
        (Scope.TICKER, "GS"),
        (Scope.TICKER, "JPM"),
    ]


def test_scored_article_rejects_unknown_sentiment():
    raw = json.loads(encode(scored()))
    raw["sentiment"] = "bearish"
    with pytest.raises(ContractError) as exc:
        decode(ScoredArticle, json.dumps(raw))
    assert exc.value.field == "sentiment"


def test_rate_window_validates_counts():
    w = RateWindow(
        scope="topic", key="Macro", start=T0, end=T0 + timedelta(minutes=5), total=10, negative=3
    )
    assert decode(RateWindow, encode(w)) == w
    raw = json.loads(encode(w))
    raw["negative"] = 11
    with pytest.raises(ContractError, match="cannot exceed total"):
        decode(RateWindow, json.dumps(raw))


def test_alert_round_trip():
    alert = Alert(
        id="a1",
        rule="topic-share",
        scope=Scope.TOPIC,
        key="Macro",
        state="firing",
        detector="beta_binomial",
        window_start=T0,
        window_end=T0 + timedelta(minutes=5),
        observed_rate=0.6,
        baseline_rate=0.2,
        negative=12,
        total=20,
        score=4.2,
        started_at=T0,
        evidence=[{"id": "x", "title": "t", "negative_prob": 0.97}],
    )
    assert decode(Alert, encode(alert)) == alert
    raw = json.loads(encode(alert))
    raw["state"] = "pending"
    with pytest.raises(ContractError) as exc:
        decode(Alert, json.dumps(raw))
    assert exc.value.field == "state"


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"id": "x" * 513}, "id", "513 bytes; at most 512"),
        ({"id": "é" * 300}, "id", "600 bytes; at most 512"),  # bytes, not characters
        ({"body": "x" * 200_001}, "body", "200001 bytes; at most 200000"),
        ({"title": "x" * 2_001}, "title", "at most 2000 characters"),
        ({"tickers": [f"T{i}" for i in range(65)]}, "tickers", "at most 64 items"),
        ({"tickers": ["X" * 33]}, "tickers", "longer than 32"),
    ],
)
def test_bounds_are_clear_contract_errors_at_decode(change, field, says):
    """Ids fit an Elasticsearch document id and text fits one Kafka message, checked where
    a message comes in: the error names the field and the limit."""
    data = {**json.loads(encode(make_article())), **change}
    with pytest.raises(ContractError) as e:
        decode(Article, json.dumps(data))
    assert e.value.field == field
    assert says in e.value.message


def test_text_at_the_bounds_is_accepted():
    a = make_article(body="x" * 200_000, title="t" * 2_000)
    big_id = a.model_copy(update={"id": "x" * 512})
    assert decode(Article, encode(big_id)).id == "x" * 512
