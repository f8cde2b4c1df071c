"""Turn what a source found into a canonical :class:`Article`: one place for every source.

>>> n = Normaliser(watchlist={"AAPL": ["Apple"]})
>>> a = n.article(RawItem(source="wire", title="<b>Apple</b> beats; $msft flat",
...                       url="https://ex.com/x?utm_source=t",
...                       published="2026-01-02T10:00:00+02:00"))
>>> (a.title, a.url, a.tickers, a.published_at.isoformat(), a.lang)
('Apple beats; $msft flat', 'https://ex.com/x', ['AAPL', 'MSFT'], '2026-01-02T08:00:00+00:00', 'en')
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from time import struct_time
from typing import Any

from finpulse.contracts import Article, article_id, utcnow

MAX_TITLE_CHARS = 300

_WS = re.compile(r"\s+")
_TAG = re.compile(r"</?[A-Za-z!][^>]*>")
# Letters only, so "$100" is money, not a ticker; optional class suffix as in $BRK.B.
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?)\b")

# A few hundred bytes of stopwords are enough to tell the languages financial wires use;
# a text with too few hits keeps the configured default rather than a guess.
_STOPWORDS = {
    "en": "the of and to in is for on that with as by at from are was it this be has have will",
    "de": "der die das und ist nicht mit von den des sich auf für eine ein im dem zu auch wird",
    "fr": "le la les et des est une un du pour dans que qui sur pas par au aux avec ce sont",
    "es": "el la los las y de que en un una es por con para del se al lo como más sus",
    "it": "il la di che e un una per non sono del della con si gli le nel alla dei più",
    "pt": "o a os as de que e do da em um uma para com não no na por mais dos das",
    "nl": "de het een en van is dat op te in voor met zijn niet aan ook bij door naar",
}
_STOPSETS = {lang: frozenset(words.split()) for lang, words in _STOPWORDS.items()}
# Letters only some of these languages use; each counts like a stopword, up to three.
_LETTERS = {"fr": "éèêàçùœ", "de": "äöüß", "es": "ñ¿¡", "pt": "ãõ"}
_SCRIPTS = (
    ("ja", re.compile(r"[\u3040-\u30ff]")),
    ("zh", re.compile(r"[\u4e00-\u9fff]")),
    ("ko", re.compile(r"[\uac00-\ud7af]")),
    ("ru", re.compile(r"[\u0400-\u04ff]")),
    ("ar", re.compile(r"[\u0600-\u06ff]")),
)
_WORD = re.compile(r"[^\W\d_]+")


@dataclass
class RawItem:
    """What a source found, before normalisation: fields may be missing or messy."""

    source: str
    title: str | None = None
    url: str | None = None
    guid: str | None = None
    body: str | None = None  # HTML or text
    published: Any = None  # datetime, struct_time, epoch seconds or a date string
    lang: str | None = None
    tickers: list[str] = field(default_factory=list)
    ciks: list[int] = field(default_factory=list)  # SEC filer CIKs (EDGAR), mapped to tickers
    row_id: bool = False  # id from source + guid even when a URL is known (one row, one article)
    extra: dict[str, Any] = field(default_factory=dict)


class BadItem(ValueError):
    """An item that cannot become an article; ``kind`` labels the error metric."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


def html_to_text(value: str) -> str:
    """Plain text of an HTML fragment (or text): no tags, scripts, entities or runs of space.

    >>> html_to_text("<p>Q3 &amp; guidance<script>x()</script></p>\\n<br>up  5%")
    'Q3 & guidance up 5%'
    """
    if "<" in value and ">" in value:
        value = re.sub(r"(?is)<(script|style|noscript)\b.*?</\1\s*>", " ", value)
        value = _TAG.sub(" ", value)
    return _WS.sub(" ", html.unescape(value)).strip()


def to_utc(value: Any, default: datetime | None = None) -> datetime:
    """Any timestamp a feed or file offers, as aware UTC; naive values are taken as UTC."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, struct_time):
        dt = datetime(*value[:6], tzinfo=UTC)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        dt = datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            try:
                dt = parsedate_to_datetime(text)
            except (TypeError, ValueError):
                if default is None:
                    raise BadItem("bad_timestamp", f"unparseable timestamp {text!r}") from None
                return default
    elif default is not None:
        return default
    else:
        raise BadItem("missing_field", "no timestamp")
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC)


def detect_lang(text: str, default: str = "en") -> str:
    """Best-guess ISO 639-1 code from script and stopwords; ``default`` when unsure.

    >>> detect_lang("Die Aktie der Bank ist mit dem Markt gefallen")
    'de'
    >>> detect_lang("$TSLA 🚀", default="en")
    'en'
    """
    for lang, pattern in _SCRIPTS:
        if len(pattern.findall(text)) >= 3:
            return lang
    words = [w.lower() for w in _WORD.findall(text)]
    scores = {lang: sum(w in stops for w in words) for lang, stops in _STOPSETS.items()}
    for lang, letters in _LETTERS.items():
        scores[lang] += min(3, sum(text.count(c) for c in letters))
    best = max(scores, key=scores.__getitem__)
    ranked = sorted(scores.values(), reverse=True)
    if ranked[0] < 2 or ranked[0] == ranked[1]:
        return default
    return best


class TickerExtractor:
    """Tickers from cashtags and from company names/aliases on a watchlist.

    >>> TickerExtractor({"JPM": ["JPMorgan", "JP Morgan"]}).extract("JP Morgan cuts $aapl")
    ['AAPL', 'JPM']
    """

    def __init__(self, watchlist: dict[str, list[str]] | None = None) -> None:
        self._aliases: dict[str, str] = {}
        for ticker, names in (watchlist or {}).items():
            for name in names:
                if name.strip():
                    self._aliases[name.strip()] = ticker.upper()
        # Longest alias first so "Bank of America" wins over "Bank"; case kept ("Apple" ≠ apple).
        alts = sorted(self._aliases, key=len, reverse=True)
        self._pattern = (
            re.compile(r"(?<!\w)(" + "|".join(map(re.escape, alts)) + r")(?!\w)") if alts else None
        )

    def extract(self, text: str) -> list[str]:
        found = {m.upper() for m in _CASHTAG.findall(text)}
        if self._pattern:
            found |= {self._aliases[m] for m in self._pattern.findall(text)}
        return sorted(found)


class Normaliser:
    """Builds articles from raw items with the settings every source shares."""

    def __init__(
        self,
        watchlist: dict[str, list[str]] | None = None,
        default_lang: str = "en",
        *,
        ciks: dict[int, str] | None = None,
    ) -> None:
        self.tickers = TickerExtractor(watchlist)
        self.default_lang = default_lang
        self.ciks = ciks or {}

    def article(self, item: RawItem, *, fetched_at: datetime | None = None) -> Article:
        """The canonical article, or :class:`BadItem` saying which field made it impossible."""
        fetched_at = fetched_at or utcnow()
        title = html_to_text(item.title or "")
        body = html_to_text(item.body or "")
        if not title and body:  # e.g. a feed entry with only a summary: lead as title
            title = body
        if not title:
            raise BadItem("missing_field", "item has neither title nor text")
        if len(title) > MAX_TITLE_CHARS:
            cut = title.rfind(" ", 0, MAX_TITLE_CHARS)
            title = title[: cut if cut > 0 else MAX_TITLE_CHARS] + "…"
        if body == title:
            body = ""
        if not item.url and not item.guid:
            raise BadItem("missing_field", f"item {title[:60]!r} has neither link nor guid")
        text = f"{title} {body}"
        fields: dict[str, Any] = {
            "source": item.source,
            "title": title,
            "url": item.url or None,
            "body": body,
            "published_at": to_utc(item.published, default=fetched_at),
            "fetched_at": fetched_at,
            "lang": item.lang or detect_lang(text, self.default_lang),
            "tickers": [
                *item.tickers,
                *(self.ciks[c] for c in item.ciks if c in self.ciks),
                *self.tickers.extract(text),
            ],
        }
        try:
            if item.row_id:
                return Article(id=article_id(source=item.source, guid=item.guid), **fields)
            return Article.create(guid=item.guid, **fields)
        except ValueError as exc:  # bad URL scheme, pydantic validation
            raise BadItem("invalid_field", str(exc).splitlines()[0]) from None
