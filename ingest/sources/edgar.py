"""SEC EDGAR filings of watched companies, from SEC's submissions API (data.sec.gov).

EDGAR's Atom feeds ("latest filings", per-company) live under ``/cgi-bin/``, which sec.gov's
robots.txt disallows, and this crawler obeys robots.txt. SEC documents the JSON API for
programs instead: ``https://data.sec.gov/submissions/CIK##########.json`` per company, no key,
a declared User-Agent, at most 10 requests/s. Its ``filings.recent`` is columnar (parallel
lists: ``accessionNumber``, ``form``, ``items``, ``acceptanceDateTime``, ...). Each recent
filing of a chosen form becomes an article: ``Apple Inc. files 8-K: Item 2.02 Results of
Operations and Financial Condition``, linked to its filing index, tagged by CIK.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import Field

from ingest.config import SourceOptions
from ingest.fetch import FetchError
from ingest.normalise import RawItem, to_utc
from ingest.sources.base import Source, register_source
from ingest.watchlist import normalise_ticker

ARCHIVES = "https://www.sec.gov/Archives/edgar/data"
HOST_FAILURES = frozenset({"dns", "network", "timeout", "robots", "rate_limited", "unsafe_url"})
DEFAULT_FORMS = ["8-K", "8-K/A", "6-K", "10-K", "10-Q", "20-F", "SC 13D", "SCHEDULE 13D"]
# Form 8-K item numbers and their names (SEC Form 8-K General Instructions B).
ITEMS_8K = {
    "1.01": "Entry into a Material Definitive Agreement",
    "1.02": "Termination of a Material Definitive Agreement",
    "1.03": "Bankruptcy or Receivership",
    "1.04": "Mine Safety",
    "1.05": "Material Cybersecurity Incidents",
    "2.01": "Completion of Acquisition or Disposition of Assets",
    "2.02": "Results of Operations and Financial Condition",
    "2.03": "Creation of a Direct Financial Obligation",
    "2.04": "Triggering Events That Accelerate or Increase a Direct Financial Obligation",
    "2.05": "Costs Associated with Exit or Disposal Activities",
    "2.06": "Material Impairments",
    "3.01": "Notice of Delisting or Failure to Satisfy a Continued Listing Rule",
    "3.02": "Unregistered Sales of Equity Securities",
    "3.03": "Material Modification to Rights of Security Holders",
    "4.01": "Changes in Registrant's Certifying Accountant",
    "4.02": "Non-Reliance on Previously Issued Financial Statements",
    "5.01": "Changes in Control of Registrant",
    "5.02": "Departure or Appointment of Directors or Certain Officers",
    "5.03": "Amendments to Articles of Incorporation or Bylaws",
    "5.04": "Temporary Suspension of Trading Under Employee Benefit Plans",
    "5.05": "Amendments to the Code of Ethics",
    "5.06": "Change in Shell Company Status",
    "5.07": "Submission of Matters to a Vote of Security Holders",
    "5.08": "Shareholder Director Nominations",
    "7.01": "Regulation FD Disclosure",
    "8.01": "Other Events",
    "9.01": "Financial Statements and Exhibits",
}


class EdgarSubmissionsOptions(SourceOptions):
    kind: Literal["edgar_submissions"] = "edgar_submissions"
    ciks: list[int] = Field(min_length=1)
    url: str = Field(
        default="https://data.sec.gov/submissions/CIK{cik:010d}.json",
        pattern=r"^https?://.*\{cik(:[^}]*)?\}",
    )
    forms: list[str] = Field(default_factory=lambda: list(DEFAULT_FORMS))
    max_age_days: float = Field(default=7.0, gt=0)  # older filings are history, not news


def filing_items(data: Any, cik: int, forms: list[str], since: datetime) -> list[RawItem]:
    """The filings in one submissions document of the given forms accepted after ``since``.

    >>> doc = {"name": "Apple Inc.", "tickers": ["AAPL"], "filings": {"recent": {
    ...     "accessionNumber": ["0000320193-26-000004", "0000320193-25-000001"],
    ...     "form": ["8-K", "8-K"], "items": ["2.02,9.01", "8.01"],
    ...     "acceptanceDateTime": ["2026-01-02T21:30:05.000Z", "2025-01-02T21:30:05.000Z"],
    ...     "filingDate": ["2026-01-02", "2025-01-02"],
    ...     "primaryDocDescription": ["8-K", "8-K"]}}}
    >>> [item] = filing_items(doc, 320193, ["8-K"], since=datetime(2025, 12, 1, tzinfo=UTC))
    >>> item.title[:77]
    'Apple Inc. files 8-K: Item 2.02 Results of Operations and Financial Condition'
    >>> item.tickers, item.ciks, item.url[-49:]
    (['AAPL'], [320193], '000032019326000004/0000320193-26-000004-index.htm')
    """
    recent = (data.get("filings") or {}).get("recent") if isinstance(data, dict) else None
    if not isinstance(recent, dict) or not isinstance(recent.get("accessionNumber"), list):
        raise FetchError("parse", f"CIK {cik}: no filings.recent.accessionNumber list")
    name = str(data.get("name") or f"CIK {cik}")
    tickers = [normalise_ticker(str(t)) for t in (data.get("tickers") or [])[:1]]

    def column(key: str, n: int) -> str:
        values = recent.get(key) or []
        return str(values[n]) if n < len(values) and values[n] is not None else ""

    out = []
    for n, accession in enumerate(recent["accessionNumber"]):
        form = column("form", n)
        accepted = column("acceptanceDateTime", n) or column("filingDate", n)
        when = to_utc(accepted, default=since)
        if form not in forms or when <= since:
            continue
        items = [i.strip() for i in column("items", n).split(",") if i.strip()]
        described = "; ".join(f"Item {i} {ITEMS_8K[i]}" if i in ITEMS_8K else f"Item {i}"
                              for i in items)  # fmt: skip
        desc = column("primaryDocDescription", n)
        detail = described or (desc if desc and desc.upper() != form.upper() else "")
        out.append(
            RawItem(
                source="",
                title=f"{name} files {form}" + (f": {detail}" if detail else ""),
                url=f"{ARCHIVES}/{cik}/{accession.replace('-', '')}/{accession}-index.htm",
                guid=accession,
                published=when,
                lang="en",
                tickers=list(tickers),
                ciks=[cik],
            )
        )
    return out


@register_source
class EdgarSubmissionsSource(Source):
    kind = "edgar_submissions"
    Options = EdgarSubmissionsOptions
    options: EdgarSubmissionsOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._validators: dict[str, tuple[str | None, str | None]] = {}

    def urls(self) -> list[str]:
        return [self.options.url.format(cik=c) for c in self.options.ciks]

    async def poll(self) -> AsyncIterator[RawItem]:
        """One request per company. A company whose document fails is reported and the others
        go on; a failure of the host itself (DNS, network, robots.txt, rate limit) ends the poll,
        so a down or throttling SEC gets no more requests until the source's backoff ends.
        """
        since = datetime.now(UTC) - timedelta(days=self.options.max_age_days)
        self._validators, failures, last = {}, 0, None
        for cik, url in zip(self.options.ciks, self.urls(), strict=True):
            try:
                items = await self._filings(cik, url, since)
            except FetchError as exc:
                if exc.kind in HOST_FAILURES:
                    raise
                failures, last = failures + 1, exc
                self.ctx.on_error(self.name, exc.kind, str(exc))
                continue
            for item in items:
                item.source = self.name
                yield item
        if last is not None and failures == len(self.options.ciks):
            raise FetchError(last.kind, f"all {failures} companies failed; last: {last}")

    async def _filings(self, cik: int, url: str, since: datetime) -> list[RawItem]:
        etag, last_modified = self.ctx.store.validators(url)
        resp = await self.ctx.get(
            self.name, url, etag=etag, last_modified=last_modified, accept="application/json"
        )
        if resp.not_modified:
            return []
        try:
            data = json.loads(resp.content)
        except ValueError as exc:
            raise FetchError("parse", f"{url}: not JSON ({exc})") from None
        items = filing_items(data, cik, self.options.forms, since)
        self._validators[url] = (resp.headers.get("etag"), resp.headers.get("last-modified"))
        return items

    async def commit(self) -> None:
        for url, (etag, last_modified) in self._validators.items():
            if etag or last_modified:
                self.ctx.store.save_validators(url, etag, last_modified)
