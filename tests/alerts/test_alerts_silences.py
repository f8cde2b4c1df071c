"""Silence matchers: Alertmanager semantics on RE2, so no pattern can stall matching."""

from datetime import timedelta

import pytest
from test_alerts_notifiers import NOW, make_alert

from alerts.silences import MAX_MATCHER_CHARS, Silence, parse_matcher
from alerts.store import AlertStore


@pytest.mark.timeout(20)  # backtracking engines take 2^40 steps here: they would hang
def test_a_catastrophic_pattern_matches_in_linear_time():
    matcher = parse_matcher("key=~(A+)+$")
    assert matcher.matches({"key": "A" * 40 + "!"}) is False
    assert matcher.matches({"key": "A" * 100_000}) is True
    assert parse_matcher("key!~(x+x+)+y").matches({"key": "x" * 5000}) is True


@pytest.mark.timeout(20)
def test_a_catastrophic_silence_cannot_stall_the_store(tmp_path):
    store = AlertStore(tmp_path / "a.db")
    store.add_silence(
        Silence(matchers=["key=~(A+)+$"], starts_at=NOW, ends_at=NOW + timedelta(hours=1))
    )
    evil = make_alert(key="A" * 60 + "!")
    assert store.silenced(evil, NOW) is None
    assert store.silenced(make_alert(key="A" * 60), NOW) is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("key=~(a)\\1", "bad regular expression.*invalid escape sequence"),  # backreference
        ("key=~(?=x)", "bad regular expression.*perl operator"),  # lookahead
        ("key=~(", "bad regular expression.*missing \\)"),
        ("key=~" + "a" * MAX_MATCHER_CHARS, f"at most {MAX_MATCHER_CHARS} characters"),
        ("key=" + " " * 200_000 + "x", f"at most {MAX_MATCHER_CHARS} characters"),
    ],
)
def test_patterns_re2_cannot_run_are_refused_at_creation(text, message):
    with pytest.raises(ValueError, match=message):
        parse_matcher(text)
    with pytest.raises(ValueError, match=message):
        Silence(matchers=[text], ends_at=NOW + timedelta(hours=1))


def test_quoted_values_are_matched_unquoted():
    assert parse_matcher('key=~"AAPL|MSFT"').matches({"key": "MSFT"})
    assert str(parse_matcher("key='AAPL'")) == "key=AAPL"


def test_expired_silences_are_not_listed_as_active(tmp_path):
    store = AlertStore(tmp_path / "a.db")
    old = store.add_silence(
        Silence(matchers=["key=AAPL"], starts_at=NOW - timedelta(hours=2), ends_at=NOW)
    )
    live = store.add_silence(
        Silence(matchers=["key=AAPL"], starts_at=NOW, ends_at=NOW + timedelta(hours=1))
    )
    assert [s.id for s in store.list_silences(NOW)] == [live.id]
    assert [s.id for s in store.list_silences()] == [old.id, live.id]
