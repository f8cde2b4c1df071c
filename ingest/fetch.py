"""Polite, bounded HTTP for every source: one place for timeouts, retries, robots.txt,
per-host pacing, conditional GET, size caps and the private-address guard.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
import time
import urllib.robotparser
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import httpx

from finpulse.retry import backoff_s

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
PERMANENT_REDIRECTS = frozenset({301, 308})


class FetchError(Exception):
    """A fetch that did not produce a usable response; ``kind`` labels the error metric.

    ``retry_after`` is the server's Retry-After in seconds, when it asked us to wait.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.kind, self.status, self.retry_after = kind, status, retry_after
        super().__init__(message)


@dataclass
class Response:
    url: str  # final URL after redirects
    status: int
    content: bytes
    headers: httpx.Headers
    moved_to: str | None = None  # final URL when every redirect on the way was permanent

    @property
    def retry_after(self) -> float | None:
        return retry_after_s(self.headers.get("retry-after"))

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class HostLimiter:
    """Per-host request spacing and concurrency; the clock and sleep are injectable.

    >>> import asyncio
    >>> now, slept = [0.0], []
    >>> async def fake_sleep(s):
    ...     slept.append(s); now[0] += s
    >>> lim = HostLimiter(min_interval_s=2.0, concurrency=1, clock=lambda: now[0], sleep=fake_sleep)
    >>> async def three():
    ...     for _ in range(3):
    ...         async with lim.slot("ex.com"):
    ...             pass
    >>> asyncio.run(three()); slept
    [2.0, 2.0]
    """

    def __init__(
        self,
        min_interval_s: float,
        concurrency: int,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.min_interval_s, self.concurrency = min_interval_s, concurrency
        self._clock, self._sleep = clock, sleep
        self._next: dict[str, float] = {}
        self._sems: dict[str, asyncio.Semaphore] = {}
        self._interval: dict[str, float] = {}

    def set_interval(self, host: str, seconds: float) -> None:
        """Slow one host down further, e.g. to its robots.txt Crawl-delay; never speeds it up."""
        self._interval[host] = max(self._interval.get(host, self.min_interval_s), seconds)

    def interval(self, host: str) -> float:
        """The spacing now applied between requests to ``host``."""
        return self._interval.get(host, self.min_interval_s)

    def slot(self, host: str) -> _Slot:
        return _Slot(self, host)

    async def _acquire(self, host: str) -> None:
        sem = self._sems.setdefault(host, asyncio.Semaphore(self.concurrency))
        await sem.acquire()
        now = self._clock()
        start = max(now, self._next.get(host, now))
        self._next[host] = start + self._interval.get(host, self.min_interval_s)
        if start > now:
            await self._sleep(start - now)


class _Slot:
    def __init__(self, limiter: HostLimiter, host: str) -> None:
        self._limiter, self._host = limiter, host

    async def __aenter__(self) -> None:
        await self._limiter._acquire(self._host)

    async def __aexit__(self, *exc: object) -> None:
        self._limiter._sems[self._host].release()


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), None if unusable.

    >>> retry_after_s("120"), retry_after_s("soon")
    (120.0, None)
    >>> retry_after_s("Fri, 02 Jan 2026 10:01:00 GMT", datetime(2026, 1, 2, 10, 0, tzinfo=UTC))
    60.0
    """
    if not value or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def is_public(ip: str, allowed: Sequence[Network] = ()) -> bool:
    """True for a globally routable address, or one inside an explicitly allowed network.

    >>> is_public("93.184.216.34"), is_public("127.0.0.1"), is_public("169.254.169.254")
    (True, False, False)
    >>> is_public("127.0.0.1", [ipaddress.ip_network("127.0.0.1/32")])
    True
    """
    addr = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    if any(addr in net for net in allowed):
        return True
    return addr.is_global and not addr.is_multicast


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


class Fetcher:
    """The one HTTP client of the crawler. Every request goes through :meth:`get`."""

    def __init__(
        self,
        *,
        user_agent: str,
        timeout_s: float,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        host_min_interval_s: float = 1.0,
        host_concurrency: int = 2,
        robots_ttl_s: float = 3600.0,
        max_redirects: int = 5,
        retry_after_max_s: float = 60.0,
        allow_private: Sequence[Network] = (),
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        resolver: Resolver = resolve,
        rng: random.Random | None = None,
    ) -> None:
        self.user_agent = user_agent
        self.max_retries, self.backoff_s, self.backoff_max_s = max_retries, backoff_s, backoff_max_s
        self.max_redirects, self.allow_private = max_redirects, list(allow_private)
        self.robots_ttl_s, self.retry_after_max_s = robots_ttl_s, retry_after_max_s
        self.limiter = HostLimiter(host_min_interval_s, host_concurrency, clock=clock, sleep=sleep)
        self._clock, self._sleep, self._resolve = clock, sleep, resolver
        self._rng = rng or random.Random()
        self._robots: dict[str, tuple[float, urllib.robotparser.RobotFileParser]] = {}
        self._robots_locks: dict[str, asyncio.Lock] = {}
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            headers={"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"},
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(
        self,
        url: str,
        *,
        max_bytes: int,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = "*/*",
        headers: dict[str, str] | None = None,
    ) -> Response:
        """GET with redirects checked hop by hop; raises :class:`FetchError` with a reason.

        Every hop (first URL and each redirect) must be http(s), allowed by robots.txt, and
        resolve only to public addresses or ones inside ``allow_private``. A 429/503 whose
        Retry-After is longer than ``retry_after_max_s`` is not retried now: the error carries
        the wait so the caller can schedule the next poll after it.
        """
        headers = {**(headers or {}), "Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        permanent = True
        for hop in range(self.max_redirects + 1):
            await self._check_url(url)
            await self._check_robots(url)
            resp = await self._get_with_retries(url, headers, max_bytes)
            if resp.status in (301, 302, 303, 307, 308):
                location = resp.headers.get("location")
                if not location:
                    raise FetchError(
                        "http_status", f"{url}: redirect without Location", resp.status
                    )
                permanent = permanent and resp.status in PERMANENT_REDIRECTS
                url = urljoin(url, location)
                continue
            if resp.status == 429:
                wait = resp.retry_after
                raise FetchError(
                    "rate_limited",
                    f"{url}: HTTP 429 too many requests"
                    + (f", asked to wait {wait:.0f}s" if wait is not None else ""),
                    429,
                    retry_after=wait,
                )
            if resp.status >= 400:
                raise FetchError(
                    "http_status",
                    f"{url}: HTTP {resp.status}",
                    resp.status,
                    retry_after=resp.retry_after,
                )
            if hop and permanent:
                resp.moved_to = url
            return resp
        raise FetchError("redirects", f"more than {self.max_redirects} redirects from {url}")

    async def _check_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError("unsafe_url", f"refusing non-http(s) URL {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            ips = await self._resolve(parts.hostname, port)
        except OSError as exc:
            raise FetchError("dns", f"{parts.hostname}: {exc}") from None
        bad = [ip for ip in ips if not is_public(ip, self.allow_private)]
        if bad or not ips:
            raise FetchError("unsafe_url", f"refusing {url}: resolves to private address {bad}")

    async def _check_robots(self, url: str) -> None:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        # One robots.txt request per origin even when several sources start at once.
        async with self._robots_locks.setdefault(origin, asyncio.Lock()):
            cached = self._robots.get(origin)
            if cached is None or self._clock() - cached[0] > self.robots_ttl_s:
                try:
                    parser = await self._load_robots(origin)
                except FetchError as exc:  # not cached: asked again on the next fetch
                    raise FetchError(
                        exc.kind, f"{origin}/robots.txt unreachable, not fetching {url}: {exc}"
                    ) from None
                self._robots[origin] = (self._clock(), parser)
                delay = parser.crawl_delay(self.user_agent)
                if delay:
                    self.limiter.set_interval(parts.netloc, float(delay))
            else:
                parser = cached[1]
        if not parser.can_fetch(self.user_agent, url):
            raise FetchError("robots", f"robots.txt of {origin} disallows {url}")

    async def _load_robots(self, origin: str) -> urllib.robotparser.RobotFileParser:
        """RFC 9309: a 4xx robots.txt means no rules; 5xx means stay out for now; no answer
        raises (the caller stays out too, and asks again next time rather than caching it).
        """
        parser = urllib.robotparser.RobotFileParser(origin + "/robots.txt")
        resp = await self._get_with_retries(origin + "/robots.txt", {}, 512_000)
        if resp.status >= 500 or resp.status == 429:  # 429: unreachable too, not "no rules"
            parser.disallow_all = True
        elif resp.status >= 300:
            parser.allow_all = True
        else:
            parser.parse(resp.content.decode("utf-8", "replace").splitlines())
        parser.modified()
        return parser

    async def _get_with_retries(
        self, url: str, headers: dict[str, str], max_bytes: int
    ) -> Response:
        host = urlsplit(url).netloc
        for attempt in range(self.max_retries + 1):
            last, wait = attempt == self.max_retries, None
            try:
                async with self.limiter.slot(host):
                    resp = await self._get_once(url, headers, max_bytes)
            except httpx.TimeoutException as exc:
                if last:
                    raise FetchError("timeout", f"{url}: {type(exc).__name__}") from None
            except httpx.TransportError as exc:
                if last:
                    raise FetchError("network", f"{url}: {type(exc).__name__}: {exc}") from None
            else:
                if resp.status not in RETRY_STATUS or last:
                    return resp
                wait = resp.retry_after if resp.status in (429, 503) else None
                if wait is not None and wait > self.retry_after_max_s:
                    return resp  # too long to wait inside one poll: the caller reschedules
            delay = backoff_s(
                attempt, self.backoff_s, self.backoff_max_s, jitter=1.0, rng=self._rng
            )
            if wait is not None:  # the server said how long; never come back sooner
                delay = max(delay, wait)
            log.debug("retrying %s in %.2fs (attempt %d)", url, delay, attempt + 1)
            await self._sleep(delay)
        raise AssertionError("unreachable")

    async def _get_once(self, url: str, headers: dict[str, str], max_bytes: int) -> Response:
        async with self._client.stream("GET", url, headers=headers) as resp:
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError("too_large", f"{url}: {declared} bytes > limit {max_bytes}")
            chunks, size = [], 0
            async for chunk in resp.aiter_raw():
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError("too_large", f"{url}: body over limit {max_bytes} bytes")
                chunks.append(chunk)
            content = b"".join(chunks)
            if resp.headers.get("content-encoding"):
                content = _decode_body(resp, content, max_bytes, url)
            return Response(str(resp.url), resp.status_code, content, resp.headers)


def _decode_body(resp: httpx.Response, raw: bytes, max_bytes: int, url: str) -> bytes:
    """Undo Content-Encoding without letting a compression bomb past the size cap."""
    encoding = resp.headers.get("content-encoding", "").lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
        d = zlib.decompressobj(wbits)
        out = d.decompress(raw, max_bytes + 1)
        if len(out) > max_bytes:
            raise FetchError("too_large", f"{url}: decompressed body over {max_bytes} bytes")
        return out
    if encoding in ("identity", ""):
        return raw
    raise FetchError("bad_encoding", f"{url}: unsupported Content-Encoding {encoding!r}")
