"""A real HTTP server on 127.0.0.1 serving fixture feeds, pages and APIs, recording requests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ingest.config import IngestSettings

Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    at: float


@dataclass
class FixtureSite:
    base: str
    port: int
    routes: dict[str, Callable[[dict[str, str]], Reply]] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)

    def hits_for(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    def url(self, path: str) -> str:
        return self.base + path


def rss(items: list[str], encoding: str = "utf-8") -> bytes:
    body = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n<rss version="2.0"><channel>'
        "<title>Fixture wire</title><link>http://example.invalid/</link>"
        + "".join(items)
        + "</channel></rss>"
    )
    return body.encode(encoding)


def item(title: str | None, link: str | None, guid: str | None = None, desc: str = "",
         date: str = "Fri, 02 Jan 2026 10:00:00 +0100") -> str:  # fmt: skip
    parts = ["<item>"]
    if title is not None:
        parts.append(f"<title>{title}</title>")
    if link is not None:
        parts.append(f"<link>{link}</link>")
    if guid is not None:
        parts.append(f'<guid isPermaLink="false">{guid}</guid>')
    if desc:
        parts.append(f"<description><![CDATA[{desc}]]></description>")
    parts.append(f"<pubDate>{date}</pubDate></item>")
    return "".join(parts)


PAGE = """<html><head><title>{title}</title><meta charset="{charset}"></head><body>
<nav>Home | Markets | Login</nav><script>var tracking = 1;</script>
<article><h1>{title}</h1>
<p>{para}</p>
<p>{para} {title}: more details were given in a statement to the exchange, and analysts
discussed what {title} means for the rest of the sector over the coming quarters.</p>
</article><footer>Copyright fixture</footer></body></html>"""


def page(title: str, para: str, charset: str = "utf-8") -> bytes:
    return PAGE.format(title=title, para=para, charset=charset).encode(charset)


def build_routes(site: FixtureSite) -> None:
    b = site.base
    ok_xml = {"Content-Type": "application/rss+xml; charset=utf-8"}
    main_feed = rss(
        [
            item(
                "Acme Corp cuts &lt;b&gt;guidance&lt;/b&gt; as $ACME demand slows",
                f"{b}/news/acme-cuts?utm_source=rss&amp;id=7#comments",
                guid="acme-1",
                desc="<p>Acme <b>Corp</b> cut its outlook &amp; warned on margins.</p>",
            ),
            item(
                "Globex beats estimates, raises dividend",
                f"{b}/news/globex-beats",
                desc="Globex reported record sales.",
                date="2026-01-02T11:30:00Z",
            ),
            item("Initech files for bankruptcy protection", None, guid="initech-ch11"),
            item(None, None, desc=""),  # nothing usable: missing fields
            item("Only a guid and no link, no date", None, guid="g-2", date=""),
        ]
    )
    republish = rss(
        [
            item(
                "Fed raises rates by 25 basis points, signals pause in tightening",
                f"{b}/wire/fed-1",
                desc="The Federal Reserve raised its policy rate by 25 basis points.",
            ),
            item(
                "UPDATE 1-Fed raises rates by 25 basis points, signals a pause in tightening"
                " - Reuters",
                f"{b}/wire/fed-1-update",
                desc="The Federal Reserve raised its policy rate by 25 basis points.",
            ),
            item("Oil slides as OPEC+ weighs output hike", f"{b}/wire/oil"),
        ]
    )
    latin1 = rss(
        [item("Société Générale relève ses prévisions", f"{b}/fr/socgen", desc="Hausse de 5 %")],
        encoding="iso-8859-1",
    )
    etag_feed = rss([item("Stable story", f"{b}/news/stable")])

    def etag(headers: dict[str, str]) -> Reply:
        if headers.get("if-none-match") == '"v1"':
            return 304, {"ETag": '"v1"'}, b""
        return 200, {**ok_xml, "ETag": '"v1"'}, etag_feed

    with_pages = rss(
        [
            item("Acme page story", f"{b}/pages/acme.html", desc="short summary"),
            item("Latin-1 page story", f"{b}/pages/latin1.html", desc="latin summary"),
            item("Huge page story", f"{b}/pages/huge.html", desc="huge summary kept"),
            item("Junk page story", f"{b}/pages/junk.html", desc="junk summary kept"),
            item("Private redirect story", f"{b}/go/private", desc="redirect summary kept"),
            item("Robots-blocked story", f"{b}/private/secret.html", desc="robots summary kept"),
        ]
    )
    api = {
        "status": "ok",
        "articles": [
            {
                "headline": "Umbrella Corp recalls vaccine batch",
                "link": {"href": f"{b}/api-news/umbrella"},
                "published": "2026-01-03T09:00:00+00:00",
                "summary": "<p>Umbrella recalled a batch.</p>",
                "symbols": ["umbr"],
            },
            {"headline": "No link nor id here"},
            "not an object",
        ],
    }
    site.routes.update(
        {
            "/robots.txt": lambda h: (200, {}, b"User-agent: *\nDisallow: /private/\n"),
            "/feed.xml": lambda h: (200, ok_xml, main_feed),
            "/republish.xml": lambda h: (200, ok_xml, republish),
            "/latin1.xml": lambda h: (200, {"Content-Type": "application/rss+xml"}, latin1),
            "/broken.xml": lambda h: (200, ok_xml, b"<rss><channel><item><title>Trunc"),
            "/junk.xml": lambda h: (200, ok_xml, b"\x00\xff\xfe<html>not a feed at all\x9c"),
            "/etag.xml": etag,
            "/fail.xml": lambda h: (500, {}, b"internal error"),
            "/pages.xml": lambda h: (200, ok_xml, with_pages),
            "/pages/acme.html": lambda h: (
                200,
                {"Content-Type": "text/html; charset=utf-8"},
                page(
                    "Acme page story",
                    "Acme Corp said on Friday it would close two plants in Ohio and cut 900 jobs, "
                    "blaming weak demand for its widgets across North America.",
                ),
            ),
            "/pages/latin1.html": lambda h: (
                200,
                {"Content-Type": "text/html; charset=iso-8859-1"},
                page(
                    "Crédit story",
                    "Le Crédit Agricole a annoncé une baisse de son bénéfice trimestriel, "
                    "pénalisé par des provisions élevées en Italie.",
                    "iso-8859-1",
                ),
            ),
            "/pages/huge.html": lambda h: (
                200,
                {"Content-Type": "text/html"},
                b"<p>x</p>" * 400_000,
            ),
            "/pages/junk.html": lambda h: (
                200,
                {"Content-Type": "text/html"},
                bytes(range(256)) * 4,
            ),
            "/go/private": lambda h: (
                302,
                {"Location": f"http://127.0.0.2:{site.port}/pages/acme.html"},
                b"",
            ),
            "/go/file": lambda h: (302, {"Location": "file:///etc/passwd"}, b""),
            "/go/local": lambda h: (302, {"Location": "/pages/acme.html"}, b""),
            "/private/secret.html": lambda h: (200, {}, page("Secret", "Should not be fetched.")),
            "/api/news.json": lambda h: (
                200,
                {"Content-Type": "application/json"},
                json.dumps(api).encode(),
            ),
            "/api/bad.json": lambda h: (200, {"Content-Type": "application/json"}, b"{not json"),
        }
    )


class _Handler(BaseHTTPRequestHandler):
    site: FixtureSite

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.site.hits.append(Hit(path, headers, time.monotonic()))
        route = self.site.routes.get(path)
        status, extra, body = route(headers) if route else (404, {}, b"not found")
        self.send_response(status)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[FixtureSite]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True  # a slow handler must not hold up teardown
    port = server.server_address[1]
    fixture = FixtureSite(base=f"http://127.0.0.1:{port}", port=port)
    server.RequestHandlerClass = type("H", (_Handler,), {"site": fixture})
    build_routes(fixture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fixture
    server.shutdown()
    server.server_close()


@pytest.fixture
def ingest_settings(tmp_path, site) -> Callable[..., IngestSettings]:
    """Settings for the fixture site: loopback allowed, no politeness delays, tmp state."""

    def make(sources: list[dict], **overrides: object) -> IngestSettings:
        return IngestSettings.model_validate(
            {
                "sources": sources,
                "allow_private_addresses": ["127.0.0.1/32"],
                "host_min_interval_s": 0.0,
                "max_retries": 1,
                "retry_backoff_s": 0.0,
                "request_timeout_s": 5.0,
                "max_page_bytes": 1_000_000,
                "dedup_db": tmp_path / "ingest.db",
                "spool_path": tmp_path / "spool.jsonl",
                "watchlist": {"GLBX": ["Globex"], "INTC": ["Initech"]},
                **overrides,
            }
        )

    return make
