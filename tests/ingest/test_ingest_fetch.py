import asyncio
import ipaddress
import random

import pytest
from ingest_helpers import FakeTime

from ingest.fetch import Fetcher, FetchError, HostLimiter, is_public

LOOPBACK = [ipaddress.ip_network("127.0.0.1/32")]


def fetcher(**kw):
    t = kw.pop("time", FakeTime())
    defaults = dict(user_agent="finpulse-test/1.0", timeout_s=5.0, max_retries=2, backoff_s=1.0,
                    host_min_interval_s=0.0, allow_private=LOOPBACK, clock=t.clock, sleep=t.sleep,
                    rng=random.Random(0))  # fmt: skip
    return Fetcher(**{**defaults, **kw})


def run(coro):
    return asyncio.run(coro)


async def _get(f, url, **kw):
    try:
        return await f.get(url, max_bytes=kw.pop("max_bytes", 1_000_000), **kw)
    finally:
        await f.aclose()


def test_host_limiter_spaces_requests_per_host_without_real_sleep():
    t = FakeTime()
    lim = HostLimiter(min_interval_s=0.5, concurrency=2, clock=t.clock, sleep=t.sleep)

    async def go():
        for host in ["a", "a", "b", "a"]:
            async with lim.slot(host):
                pass

    run(go())
    assert t.slept == [0.5, 0.5]  # the 2nd and 3rd request to "a" wait; "b" does not
    lim.set_interval("a", 3.0)  # e.g. robots.txt Crawl-delay
    run(go())
    assert t.slept[-1] == 3.0


def test_host_limiter_bounds_concurrency():
    lim = HostLimiter(min_interval_s=0.0, concurrency=2)
    active, peak = 0, 0

    async def one():
        nonlocal active, peak
        async with lim.slot("h"):
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.01)
            active -= 1

    async def go():
        await asyncio.gather(*(one() for _ in range(6)))

    run(go())
    assert peak == 2


@pytest.mark.parametrize(
    ("ip", "public"),
    [("8.8.8.8", True), ("10.0.0.1", False), ("192.168.1.1", False), ("172.16.0.1", False),
     ("127.0.0.1", False), ("169.254.169.254", False), ("::1", False), ("fe80::1", False),
     ("::ffff:127.0.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False)],
)  # fmt: skip
def test_is_public(ip, public):
    assert is_public(ip) is public


def test_get_sends_user_agent_and_reads_robots_once(site):
    f = fetcher()
    resp = run(_get(f, site.url("/feed.xml")))
    assert resp.status == 200 and b"Acme" in resp.content
    assert site.hits_for("/feed.xml")[0].headers["user-agent"] == "finpulse-test/1.0"
    assert len(site.hits_for("/robots.txt")) == 1


def test_robots_disallow_is_respected(site):
    with pytest.raises(FetchError) as exc:
        run(_get(fetcher(), site.url("/private/secret.html")))
    assert exc.value.kind == "robots"
    assert site.hits_for("/private/secret.html") == []


def test_conditional_get_returns_304(site):
    resp = run(_get(fetcher(), site.url("/etag.xml"), etag='"v1"'))
    assert resp.not_modified and resp.content == b""
    assert site.hits_for("/etag.xml")[0].headers["if-none-match"] == '"v1"'


def test_5xx_is_retried_with_backoff_then_reported(site):
    t = FakeTime()
    with pytest.raises(FetchError) as exc:
        run(_get(fetcher(time=t, max_retries=2), site.url("/fail.xml")))
    assert (exc.value.kind, exc.value.status) == ("http_status", 500)
    assert len(site.hits_for("/fail.xml")) == 3  # one try + two retries, bounded
    assert len(t.slept) == 2 and t.slept[0] <= 1.0 and t.slept[1] <= 2.0


def test_redirect_to_private_address_is_refused_before_connecting(site):
    with pytest.raises(FetchError) as exc:
        run(_get(fetcher(), site.url("/go/private")))
    assert exc.value.kind == "unsafe_url" and "127.0.0.2" in str(exc.value)


def test_redirect_to_non_http_is_refused(site):
    with pytest.raises(FetchError) as exc:
        run(_get(fetcher(), site.url("/go/file")))
    assert exc.value.kind == "unsafe_url"


def test_relative_redirect_is_followed(site):
    resp = run(_get(fetcher(), site.url("/go/local")))
    assert resp.status == 200 and resp.url.endswith("/pages/acme.html")


def test_loopback_refused_unless_allowed(site):
    with pytest.raises(FetchError) as exc:
        run(_get(fetcher(allow_private=[]), site.url("/feed.xml")))
    assert exc.value.kind == "unsafe_url"
    assert site.hits == []  # nothing was sent


def test_huge_body_is_cut_off(site):
    with pytest.raises(FetchError) as exc:
        run(_get(fetcher(), site.url("/pages/huge.html"), max_bytes=100_000))
    assert exc.value.kind == "too_large"


def test_timeouts_are_reported_not_hung(site):
    import time

    # generous against a busy CI box: robots.txt must answer within the timeout, /slow never
    site.routes["/slow"] = lambda h: (time.sleep(4.0), (200, {}, b"late"))[1]
    with pytest.raises(FetchError) as exc:
        run(_get(fetcher(timeout_s=1.0, max_retries=0), site.url("/slow")))
    assert exc.value.kind == "timeout"
