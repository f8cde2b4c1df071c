"""Which tickers a story is about, from what real sources carry: company names, SEC CIKs.

Headlines rarely carry cashtags; wires and regulators name the company, and EDGAR names the
filer by CIK. A watchlist file gives each ticker its CIK and the names headlines use::

    ticker,cik,names
    JPM,19617,JPMorgan|JP Morgan|J.P. Morgan

(``#`` lines are comments; ``cik`` may be empty). SEC's own ``company_tickers.json``
(``{"0": {"cik_str": 320193, "ticker": "AAPL", "title": "Apple Inc."}, ...}``), downloaded by the
user, maps every listed CIK to its ticker; its titles are legal names ("APPLE INC"), so they are
not used as aliases.

>>> import io
>>> wl = read_watchlist_csv(io.StringIO("ticker,cik,names\\nJPM,19617,JPMorgan|JP Morgan\\n"))
>>> wl.aliases, wl.ciks
({'JPM': ['JPMorgan', 'JP Morgan']}, {19617: 'JPM'})
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

BUILTIN_PREFIX = "builtin:"
DATA_DIR = Path(__file__).parent / "data"
DEFAULT_WATCHLIST = "builtin:us-large-caps"


class WatchlistError(ValueError):
    """A watchlist or ticker file that cannot be used; the message names the file and line."""


@dataclass
class Watchlist:
    aliases: dict[str, list[str]] = field(default_factory=dict)  # ticker -> names
    ciks: dict[int, str] = field(default_factory=dict)  # CIK -> ticker

    def merge(self, other: Watchlist) -> Watchlist:
        """Both lists together; names are unioned, ``other``'s CIKs win."""
        aliases = {t: list(names) for t, names in self.aliases.items()}
        for ticker, names in other.aliases.items():
            known = aliases.setdefault(ticker, [])
            known += [n for n in names if n not in known]
        return Watchlist(aliases, {**self.ciks, **other.ciks})


def normalise_ticker(ticker: str) -> str:
    """One spelling per class share: SEC's ``BRK-B`` is the cashtag ``BRK.B``.

    >>> normalise_ticker(" brk-b ")
    'BRK.B'
    """
    return ticker.strip().upper().replace("-", ".")


def resolve_path(name: str | Path) -> Path:
    """A path, or ``builtin:NAME`` for a list shipped in ``ingest/data/watchlist-NAME.csv``."""
    text = str(name)
    if text.startswith(BUILTIN_PREFIX):
        path = DATA_DIR / f"watchlist-{text[len(BUILTIN_PREFIX) :]}.csv"
        if not path.is_file():
            shipped = sorted(p.stem.removeprefix("watchlist-") for p in DATA_DIR.glob("*.csv"))
            raise WatchlistError(f"no shipped watchlist {text!r} (shipped: {', '.join(shipped)})")
        return path
    return Path(text)


def read_watchlist_csv(stream: TextIO, source: str = "<watchlist>") -> Watchlist:
    lines = [line for line in stream if line.strip() and not line.lstrip().startswith("#")]
    reader = csv.DictReader(lines)
    missing = {"ticker", "names"} - set(reader.fieldnames or ())
    if missing:
        raise WatchlistError(f"{source}: header must have ticker,cik,names (missing {missing})")
    out = Watchlist()
    for n, row in enumerate(reader, start=2):
        ticker = normalise_ticker(row.get("ticker") or "")
        if not ticker:
            raise WatchlistError(f"{source}: row {n}: empty ticker")
        names = [x.strip() for x in (row.get("names") or "").split("|") if x.strip()]
        out = out.merge(Watchlist({ticker: names}))
        cik = (row.get("cik") or "").strip()
        if cik:
            if not cik.isdigit():
                raise WatchlistError(f"{source}: row {n}: CIK {cik!r} is not a number")
            out.ciks[int(cik)] = ticker
    return out


def load_watchlist(name: str | Path) -> Watchlist:
    path = resolve_path(name)
    try:
        with path.open(encoding="utf-8") as f:
            return read_watchlist_csv(f, str(name))
    except OSError as exc:
        raise WatchlistError(f"cannot read watchlist {name}: {exc.strerror or exc}") from None


def load_company_tickers(path: Path) -> dict[int, str]:
    """CIK → ticker from SEC's ``company_tickers.json``; the first ticker listed per CIK wins."""
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise WatchlistError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise WatchlistError(f"{path}: not JSON ({exc})") from None
    rows = data.values() if isinstance(data, dict) else None
    if rows is None:
        raise WatchlistError(f"{path}: expected SEC company_tickers.json (an object of rows)")
    ciks: dict[int, str] = {}
    for row in rows:
        try:
            ciks.setdefault(int(row["cik_str"]), normalise_ticker(str(row["ticker"])))
        except (KeyError, TypeError, ValueError):
            raise WatchlistError(f"{path}: row without cik_str/ticker: {row!r:.80}") from None
    return ciks
