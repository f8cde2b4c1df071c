from datetime import UTC, datetime, timedelta

import pytest

from finpulse.contracts import Article
from ingest.dedup import Deduplicator
from ingest.neardup import LSHIndex, MinHasher, bands_for, marks, near_dup_text, similarity
from ingest.state import StateStore

T0 = datetime(2026, 1, 2, tzinfo=UTC)


def art(url, title, body="", source="wire", at=T0):
    return Article.create(source=source, url=url, title=title, body=body, published_at=at)


def test_exact_duplicate_by_canonical_url_after_commit():
    d = Deduplicator(StateStore(":memory:"))
    v = d.check(art("https://ex.com/a?utm_source=x", "Acme cuts guidance"), guid=None)
    assert v.kind == "new"
    # pending: a second copy in the same poll is already a repeat
    assert d.check(art("https://EX.com/a#top", "Acme cuts guidance"), guid=None).kind == "exact"
    d.commit(v)
    assert d.seen("wire", "https://ex.com/a?fbclid=1", None)


def test_same_guid_with_a_new_url_is_exact_repeat():
    d = Deduplicator(StateStore(":memory:"), near=False)
    d.commit(d.check(art("https://ex.com/a", "Story one"), guid="g1"))
    assert d.check(art("https://ex.com/moved", "Story one, retitled"), guid="g1").kind == "exact"
    assert d.check(art("https://ex.com/other", "Story two"), guid="g2").kind == "new"


def test_released_reservation_is_tried_again():
    d = Deduplicator(StateStore(":memory:"))
    a = art("https://ex.com/a", "Acme cuts guidance")
    v = d.check(a, guid=None)
    d.release(v)  # delivery failed
    assert not d.seen("wire", a.url, None)
    assert d.check(a, guid=None).kind == "new"


def test_near_duplicate_of_wire_republish():
    d = Deduplicator(StateStore(":memory:"))
    first = art("https://a.com/1", "Fed raises rates by 25 basis points, signals pause",
                "The Federal Reserve raised its policy rate on Wednesday.")  # fmt: skip
    d.commit(d.check(first, guid=None))
    repeat = art("https://b.com/9", "UPDATE 1-Fed raises rates by 25 basis points, signals a pause",
                 "The Federal Reserve raised its policy rate on Wednesday. (Reuters)")  # fmt: skip
    v = d.check(repeat, guid=None)
    assert (v.kind, v.repeat_of) == ("near", first.id)
    other = art("https://c.com/2", "Oil slides as OPEC+ weighs output hike")
    assert d.check(other, guid=None).kind == "new"


def test_templated_posts_of_different_companies_are_not_repeats():
    d = Deduplicator(StateStore(":memory:"))
    d.commit(
        d.check(art("https://a.com/1", "$KNDI Q3 2019 earnings call transcript 12-Nov-19"), None)
    )
    v = d.check(art("https://a.com/2", "$FALC Q3 2019 earnings call transcript 19-Nov-19"), None)
    assert v.kind == "new"


def test_near_dup_window_and_restart(tmp_path):
    path = tmp_path / "state.db"
    d = Deduplicator(StateStore(path), window_s=3600)
    first = art("https://a.com/1", "Acme Corp recalls 10,000 widgets over fire risk")
    d.commit(d.check(first, guid=None))
    d.store.close()

    d2 = Deduplicator(StateStore(path), window_s=3600)  # a restart: state reloaded
    assert d2.seen("wire", "https://a.com/1", None)
    near = art("https://b.com/1", "BREAKING: Acme Corp recalls 10,000 widgets over fire risk")
    assert d2.check(near, guid=None).kind == "near"
    later = art("https://c.com/1", "Acme Corp recalls 10,000 widgets over fire risk - Reuters",
                at=T0 + timedelta(hours=5))  # fmt: skip
    assert d2.check(later, guid=None).kind == "new"  # outside the window: a new story


def test_near_filter_off():
    d = Deduplicator(StateStore(":memory:"), near=False)
    d.commit(d.check(art("https://a.com/1", "Fed raises rates by 25bp"), None))
    assert d.check(art("https://a.com/2", "UPDATE: Fed raises rates by 25bp"), None).kind == "new"


def test_minhash_similarity_tracks_jaccard():
    h = MinHasher(num_perm=256)
    a, b = (
        "the quick brown fox jumps over the lazy dog",
        "the quick brown fox jumped over a lazy dog",
    )
    sa, sb = h.shingles(a), h.shingles(b)
    jaccard = len(sa & sb) / len(sa | sb)
    assert similarity(h.signature(a), h.signature(b)) == pytest.approx(jaccard, abs=0.1)
    assert similarity(h.signature(a), h.signature(a)) == 1.0


def test_lsh_parameters_and_validation():
    bands, rows = bands_for(0.5, 128)
    assert 1 - (1 - 0.5**rows) ** bands >= 0.99 and bands * rows <= 128
    with pytest.raises(ValueError):
        LSHIndex(threshold=0.0, num_perm=128)
    with pytest.raises(ValueError):
        MinHasher(num_perm=4)


def test_marks_ignore_update_counter():
    assert marks(near_dup_text("UPDATE 2-Fed lifts rates 25bp")) == marks(
        near_dup_text("Fed lifts rates 25bp")
    )


def test_watchlist_tickers_keep_template_stories_apart():
    d = Deduplicator(StateStore(":memory:"))
    a = Article.create(source="s", url="https://a.com/1", title="Biorem reports Q3 results",
                       published_at=T0, tickers=["BRM"])  # fmt: skip
    b = Article.create(source="s", url="https://a.com/2", title="Lupin reports Q3 results",
                       published_at=T0, tickers=["LUP"])  # fmt: skip
    d.commit(d.check(a, None))
    assert d.check(b, None).kind == "new"
    plain = Deduplicator(StateStore(":memory:"))  # the same pair without tickers: merged
    plain.commit(plain.check(a.model_copy(update={"tickers": []}), None))
    assert plain.check(b.model_copy(update={"tickers": []}), None).kind == "near"
