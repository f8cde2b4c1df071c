import asyncio

from prometheus_client import CollectorRegistry

from finpulse.contracts import article_id
from ingest.crawler import Crawler
from ingest.sinks import CallbackSink, DeliveryError


def crawl(settings, *, sink=None, registry=None, runs=1):
    got = []
    sink = sink or CallbackSink(got.append)
    registry = registry or CollectorRegistry()

    async def go():
        async with Crawler(settings, sink, registry=registry) as c:
            return [await c.run_once() for _ in range(runs)]

    return got, asyncio.run(go()), registry


def metric(registry, name, **labels):
    return registry.get_sample_value(name, labels) or 0.0


def test_feed_produces_canonical_articles_once(site, ingest_settings):
    settings = ingest_settings([{"name": "wire", "url": site.url("/feed.xml")}])
    got, [[stats]], reg = crawl(settings)
    by_title = {a.title: a for a in got}
    assert sorted(by_title) == [
        "Acme Corp cuts guidance as $ACME demand slows",
        "Globex beats estimates, raises dividend",
        "Initech files for bankruptcy protection",
        "Only a guid and no link, no date",
    ]
    acme = by_title["Acme Corp cuts guidance as $ACME demand slows"]
    assert acme.url == site.url("/news/acme-cuts?id=7")  # tracking and fragment gone
    assert acme.id == article_id(site.url("/news/acme-cuts?id=7"))
    assert acme.body == "Acme Corp cut its outlook & warned on margins."
    assert acme.published_at.isoformat() == "2026-01-02T09:00:00+00:00"
    assert acme.tickers == ["ACME"] and acme.source == "wire" and acme.lang == "en"
    assert by_title["Globex beats estimates, raises dividend"].tickers == ["GLBX"]
    initech = by_title["Initech files for bankruptcy protection"]
    assert initech.url is None and initech.id == article_id(source="wire", guid="initech-ch11")
    assert (stats.items, stats.produced, stats.errors) == (5, 4, 1)
    assert metric(reg, "finpulse_crawler_errors_total", source="wire", kind="missing_field") == 1
    assert metric(reg, "finpulse_crawler_articles_produced_total", source="wire") == 4
    assert metric(reg, "finpulse_crawler_fetches_total", source="wire", outcome="ok") == 1
    assert metric(reg, "finpulse_crawler_last_success_timestamp_seconds", source="wire") > 0


def test_second_run_and_restart_add_nothing(site, ingest_settings):
    settings = ingest_settings([{"name": "wire", "url": site.url("/feed.xml")}])
    first, _, _ = crawl(settings, runs=2)  # two passes in one process
    again, [[stats]], reg = crawl(settings)  # and a restart on the same state file
    assert len(first) == 4 and again == []
    assert stats.exact == 4
    assert metric(reg, "finpulse_crawler_duplicates_total", source="wire", kind="exact") == 4


def test_republished_story_is_dropped_as_near_duplicate(site, ingest_settings):
    settings = ingest_settings([{"name": "wire", "url": site.url("/republish.xml")}])
    got, [[stats]], reg = crawl(settings)
    assert [a.url for a in got] == [site.url("/wire/fed-1"), site.url("/wire/oil")]
    assert stats.near == 1
    assert metric(reg, "finpulse_crawler_duplicates_total", source="wire", kind="near") == 1


def test_near_filter_can_be_turned_off(site, ingest_settings):
    settings = ingest_settings(
        [{"name": "wire", "url": site.url("/republish.xml")}], near_duplicates="off"
    )
    got, _, _ = crawl(settings)
    assert len(got) == 3


def test_conditional_get_is_honoured_across_restarts(site, ingest_settings):
    settings = ingest_settings([{"name": "etag", "url": site.url("/etag.xml")}])
    got, _, _ = crawl(settings)
    _, [[stats]], reg = crawl(settings)
    hits = site.hits_for("/etag.xml")
    assert len(got) == 1 and len(hits) == 2
    assert "if-none-match" not in hits[0].headers and hits[1].headers["if-none-match"] == '"v1"'
    assert metric(reg, "finpulse_crawler_fetches_total", source="etag", outcome="not_modified") == 1
    assert stats.items == 0 and not stats.failed


def test_etag_is_saved_only_after_delivery(site, ingest_settings):
    settings = ingest_settings([{"name": "etag", "url": site.url("/etag.xml")}])

    def refuse(article):
        raise RuntimeError("downstream is down")

    crawl(settings, sink=CallbackSink(refuse))
    got, _, _ = crawl(settings)  # the story was not lost: no 304, produced now
    assert [a.title for a in got] == ["Stable story"]
    assert "if-none-match" not in site.hits_for("/etag.xml")[1].headers


def test_bad_inputs_are_counted_and_never_stop_the_crawler(site, ingest_settings):
    settings = ingest_settings(
        [
            {"name": "broken", "url": site.url("/broken.xml")},
            {"name": "junk", "url": site.url("/junk.xml")},
            {"name": "latin1", "url": site.url("/latin1.xml")},
            {"name": "missing", "url": site.url("/nope.xml")},
            {"kind": "json_api", "name": "badjson", "url": site.url("/api/bad.json")},
            {"name": "wire", "url": site.url("/feed.xml")},
        ]
    )
    got, [stats], reg = crawl(settings)
    by = {s.source: s for s in stats}
    assert by["junk"].failed and by["missing"].failed and by["badjson"].failed
    assert not by["wire"].failed and by["wire"].produced == 4
    assert metric(reg, "finpulse_crawler_errors_total", source="junk", kind="parse") == 1
    assert metric(reg, "finpulse_crawler_errors_total", source="missing", kind="http_status") == 1
    assert metric(reg, "finpulse_crawler_errors_total", source="badjson", kind="parse") == 1
    assert by["broken"].errors >= 1  # malformed XML: logged and counted, whatever parsed is used
    latin = [a for a in got if a.source == "latin1"]
    assert [a.title for a in latin] == ["Société Générale relève ses prévisions"]
    assert latin[0].lang == "fr"


def test_pages_are_fetched_extracted_and_guarded(site, ingest_settings):
    settings = ingest_settings(
        [{"name": "pages", "url": site.url("/pages.xml"), "fetch_pages": True}],
        max_page_bytes=200_000,
    )
    got, [[stats]], reg = crawl(settings)
    body = {a.title: a.body for a in got}
    assert "close two plants" in body["Acme page story"]
    assert "Home | Markets" not in body["Acme page story"]  # boilerplate removed
    assert "Crédit Agricole" in body["Latin-1 page story"]  # non-UTF-8 page decoded
    assert body["Huge page story"] == "huge summary kept"
    assert body["Private redirect story"] == "redirect summary kept"
    assert body["Robots-blocked story"] == "robots summary kept"
    assert len(got) == 6
    errors = {k: metric(reg, "finpulse_crawler_errors_total", source="pages", kind=k)
              for k in ("too_large", "unsafe_url", "robots")}  # fmt: skip
    assert errors == {"too_large": 1, "unsafe_url": 1, "robots": 1}
    assert site.hits_for("/private/secret.html") == []
    assert stats.errors >= 3


def test_page_source_and_json_api(site, ingest_settings):
    settings = ingest_settings(
        [
            {"kind": "page", "name": "pg", "urls": [site.url("/pages/acme.html")]},
            {"kind": "json_api", "name": "api", "url": site.url("/api/news.json"),
             "items_path": "articles",
             "fields": {"title": "headline", "url": "link.href", "published_at": "published",
                        "body": "summary", "tickers": "symbols"}},
        ]
    )  # fmt: skip
    got, [stats], _ = crawl(settings)
    by = {a.source: a for a in got}
    assert by["pg"].title == "Acme page story" and "close two plants" in by["pg"].body
    assert by["api"].title == "Umbrella Corp recalls vaccine batch"
    assert by["api"].body == "Umbrella recalled a batch." and by["api"].tickers == ["UMBR"]
    assert by["api"].published_at.isoformat() == "2026-01-03T09:00:00+00:00"
    api_stats = next(s for s in stats if s.source == "api")
    assert (api_stats.items, api_stats.produced, api_stats.errors) == (3, 1, 2)


def test_failing_feed_is_backed_off(site, ingest_settings):
    """Driven by explicit times: the server's request log shows exponential spacing."""
    settings = ingest_settings(
        [{"name": "bad", "url": site.url("/fail.xml"), "interval_s": 10},
         {"name": "good", "url": site.url("/etag.xml"), "interval_s": 10}],
        max_retries=0, feed_backoff_max_s=80,
    )  # fmt: skip

    async def go():
        async with Crawler(
            settings, CallbackSink(lambda a: None), registry=CollectorRegistry()
        ) as c:
            polled = {}
            for now in range(0, 400, 10):
                for s in await c.run_due(float(now)):
                    polled.setdefault(s.source, []).append(now)
            return polled

    polled = asyncio.run(go())
    assert polled["good"] == list(range(0, 400, 10))
    # failures: wait 20, 40, 80, then capped at 80
    assert polled["bad"] == [0, 20, 60, 140, 220, 300, 380]
    assert len(site.hits_for("/fail.xml")) == 7  # 7 requests in 400 s, not 40


def test_delivery_failure_is_not_marked_seen(site, ingest_settings):
    settings = ingest_settings([{"name": "wire", "url": site.url("/feed.xml")}])
    calls = []

    class Flaky(CallbackSink):
        async def send(self, article):
            calls.append(article.id)
            if len(calls) == 1:
                raise DeliveryError("boom")
            await super().send(article)

    got = []
    _, [[stats]], reg = crawl(settings, sink=Flaky(got.append))
    assert stats.undelivered == 1 and len(got) == 3
    assert metric(reg, "finpulse_crawler_errors_total", source="wire", kind="delivery") == 1
    again, _, _ = crawl(settings)
    assert [a.id for a in again] == [calls[0]]  # the failed one comes through next time


def test_backoff_resets_after_success(site, ingest_settings):
    calls = []

    def flaky(headers):
        calls.append(1)
        return (500, {}, b"down") if len(calls) <= 2 else site.routes["/etag.xml"]({})

    site.routes["/flaky.xml"] = flaky
    settings = ingest_settings(
        [{"name": "flaky", "url": site.url("/flaky.xml"), "interval_s": 10}], max_retries=0
    )

    async def go():
        async with Crawler(
            settings, CallbackSink(lambda a: None), registry=CollectorRegistry()
        ) as c:
            return [now for now in range(0, 200, 10) if await c.run_due(float(now))]

    # fail at 0 (wait 20), fail at 20 (wait 40), succeed at 60, then every 10 s again
    assert asyncio.run(go()) == [0, 20, 60, *range(70, 200, 10)]
