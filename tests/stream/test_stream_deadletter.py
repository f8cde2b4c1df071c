import asyncio

from stream_helpers import make_article

from finpulse.contracts import Article, encode
from stream.deadletter import DeadLetter, JsonlDeadLetters, Reason, decode_or_deadletter


def test_valid_message_decodes():
    a = make_article(1)
    article, letter = decode_or_deadletter(Article, encode(a))
    assert article == a and letter is None


def test_malformed_and_invalid_are_told_apart_and_keep_the_bytes():
    _, bad_json = decode_or_deadletter(
        Article, b"\xff\xfe garbage", topic="t", partition=2, offset=9
    )
    assert bad_json.reason == Reason.MALFORMED and bad_json.original == b"\xff\xfe garbage"
    _, invalid = decode_or_deadletter(Article, b'{"id": "x", "source": "s"}')
    assert invalid.reason == Reason.INVALID and "title" in invalid.error
    _, empty = decode_or_deadletter(Article, None)
    assert empty.reason == Reason.MALFORMED and empty.original == b""


def test_headers_carry_the_reason_and_origin():
    letter = DeadLetter(
        Reason.INVALID, "Article.title: missing", b"{}", topic="news.raw", partition=1, offset=5
    )
    headers = dict(letter.headers())
    assert headers["finpulse.deadletter.reason"] == b"invalid"
    assert headers["finpulse.deadletter.offset"] == b"5"
    assert "finpulse.deadletter.key" not in headers


def test_jsonl_sink_round_trips(tmp_path):
    sink = JsonlDeadLetters(tmp_path / "var" / "dl.jsonl")
    letters = [
        DeadLetter(Reason.MALFORMED, "not json", b"\x00\x01", key=b"k"),
        DeadLetter(Reason.SCORING_FAILED, "boom", b"{}"),
    ]
    for letter in letters:
        asyncio.run(sink.put(letter))
    assert sink.read() == letters
