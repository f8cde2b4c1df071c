from datetime import UTC, datetime

import pytest

from ingest.normalise import (
    BadItem,
    Normaliser,
    RawItem,
    TickerExtractor,
    detect_lang,
    html_to_text,
    to_utc,
)

FETCHED = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def test_html_to_text_strips_tags_scripts_entities_and_whitespace():
    html = "<div><style>p{}</style><p>Profit &gt; forecast</p>\n\n<script>evil()</script>up</div>"
    assert html_to_text(html) == "Profit > forecast up"


def test_html_to_text_keeps_comparison_signs_that_are_not_tags():
    assert html_to_text("EPS < 0.5 > est") == "EPS < 0.5 > est"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-02T10:00:00+02:00", datetime(2026, 1, 2, 8, tzinfo=UTC)),
        ("2026-01-02T10:00:00Z", datetime(2026, 1, 2, 10, tzinfo=UTC)),
        ("Fri, 02 Jan 2026 10:00:00 -0500", datetime(2026, 1, 2, 15, tzinfo=UTC)),
        ("2026-01-02 10:00:00", datetime(2026, 1, 2, 10, tzinfo=UTC)),  # naive: taken as UTC
        (1767348000, datetime(2026, 1, 2, 10, tzinfo=UTC)),
        (1767348000000, datetime(2026, 1, 2, 10, tzinfo=UTC)),  # milliseconds
        ((2026, 1, 2, 10, 0, 0, 4, 2, 0), None),  # struct_time-like tuple is not accepted
    ],
)
def test_to_utc(value, expected):
    if expected is None:
        assert to_utc(value, default=FETCHED) == FETCHED
    else:
        assert to_utc(value) == expected


def test_to_utc_struct_time_and_bad_strings():
    import time

    assert to_utc(time.gmtime(0)) == datetime(1970, 1, 1, tzinfo=UTC)
    assert to_utc("not a date", default=FETCHED) == FETCHED
    with pytest.raises(BadItem) as exc:
        to_utc("not a date")
    assert exc.value.kind == "bad_timestamp"


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Shares of the bank fell after it said that profit was below forecasts", "en"),
        ("Die Aktie der Deutschen Bank ist nach den Zahlen für das Quartal gefallen", "de"),
        ("La banque a annoncé une baisse de ses prévisions pour le trimestre et les ventes", "fr"),
        ("El banco anunció que los beneficios de la empresa cayeron por la crisis", "es"),
        ("Акции банка упали после публикации отчета", "ru"),
        ("$TSLA", "en"),  # too little text: the default
    ],
)
def test_detect_lang(text, lang):
    assert detect_lang(text, default="en") == lang


def test_tickers_from_cashtags_and_watchlist():
    ex = TickerExtractor({"BAC": ["Bank of America", "BofA"], "AAPL": ["Apple"]})
    text = "Bank of America and BofA cut $aapl; apple pie costs $100; $BRK.B up; Apple Inc"
    assert ex.extract(text) == ["AAPL", "BAC", "BRK.B"]
    assert ex.extract("pineapple juice") == []  # aliases match whole words, case-sensitive


def test_normaliser_builds_canonical_article():
    n = Normaliser(watchlist={"ACME": ["Acme Corp"]})
    a = n.article(
        RawItem(
            source="wire",
            title="  Acme Corp <i>cuts</i> guidance ",
            url="HTTPS://Example.com/a?utm_source=x&b=1#frag",
            body="<p>Details &amp; more about $xyz.</p>",
            published="2026-01-02T10:00:00-05:00",
        ),
        fetched_at=FETCHED,
    )
    assert a.title == "Acme Corp cuts guidance"
    assert a.url == "https://example.com/a?b=1"
    assert a.body == "Details & more about $xyz."
    assert a.published_at == datetime(2026, 1, 2, 15, tzinfo=UTC)
    assert a.tickers == ["ACME", "XYZ"]
    assert a.lang == "en"


def test_normaliser_uses_body_as_title_and_truncates_long_titles():
    n = Normaliser()
    long = "word " * 200
    a = n.article(RawItem(source="s", guid="1", body=long), fetched_at=FETCHED)
    assert len(a.title) <= 301 and a.title.endswith("…")
    assert a.body == long.strip()
    assert a.published_at == FETCHED  # no date: when it was fetched


@pytest.mark.parametrize(
    ("item", "kind"),
    [
        (RawItem(source="s", url="https://ex.com/a"), "missing_field"),
        (RawItem(source="s", title="No identity"), "missing_field"),
        (RawItem(source="s", title="ftp", url="ftp://ex.com/x"), "invalid_field"),
    ],
)
def test_normaliser_rejects_with_reason(item, kind):
    with pytest.raises(BadItem) as exc:
        Normaliser().article(item, fetched_at=FETCHED)
    assert exc.value.kind == kind


def test_garbled_date_falls_back_to_fetch_time_rather_than_losing_the_story():
    a = Normaliser().article(
        RawItem(source="s", title="t", guid="1", published="yesterday-ish"), fetched_at=FETCHED
    )
    assert a.published_at == FETCHED


def test_row_id_ignores_url_for_identity():
    n = Normaliser()
    a = n.article(RawItem(source="f", guid="1", title="x", url="https://ex.com/a", row_id=True))
    b = n.article(RawItem(source="f", guid="2", title="x", url="https://ex.com/a", row_id=True))
    assert a.id != b.id and a.url == b.url
