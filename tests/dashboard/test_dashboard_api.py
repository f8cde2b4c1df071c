"""The JSON API over the embedded store (SQLite) and the real alert engine's state."""

import asyncio
import json
import re
import socket
from pathlib import Path

import pytest
from conftest import LOCAL, make_settings
from fastapi.testclient import TestClient

from dashboard.app import create_app
from dashboard.config import ApiSettings
from dashboard.events import EventStream
from dashboard.server import BindRefused, check_bind
from dashboard.services import Services
from model.data import load_feedback
from model.registry import Registry

STATIC = Path(__file__).resolve().parents[2] / "dashboard/static"
SHIPPED = Registry(Path("no-registry-here")).champion_version()  # None if none is shipped


def test_health_reports_store_and_alerts(client, services):
    body = client.get("/api/health").json()
    assert body["status"] == "ok"
    assert body["store"] == {"backend": services.store.name, "ok": True, "articles": 400}
    assert body["alerts"]["firing"] >= 1
    assert body["model"] == {"version": SHIPPED}  # no champion promoted: the shipped one


def test_full_text_search_with_filters_and_paging(client):
    r = client.get("/api/articles", params={"q": "profit warning", "size": 20}).json()
    assert r["total"] == 90  # 10 burst windows x 9 stories
    assert all("profit warning" in a["title"].lower() for a in r["items"])
    published = [a["published_at"] for a in r["items"]]
    assert published == sorted(published, reverse=True)
    page2 = client.get("/api/articles", params={"q": "profit warning", "size": 20, "page": 2})
    assert {a["id"] for a in page2.json()["items"]}.isdisjoint(a["id"] for a in r["items"])

    neg = client.get("/api/articles", params={"sentiment": "negative", "ticker": "$acme"}).json()
    assert neg["total"] == 90
    topic = client.get("/api/articles", params={"topic": "Macro", "size": 5}).json()
    assert topic["total"] > 0 and all(a["topic"] == "Macro" for a in topic["items"])
    window = client.get(
        "/api/articles",
        params={"since": "2026-01-05T09:00:00Z", "until": "2026-01-05T09:05:00Z"},
    ).json()
    assert window["total"] == 10
    source = client.get("/api/articles", params={"source": "newsdesk", "size": 1}).json()
    assert source["items"][0]["source"] == "newsdesk"


def test_articles_carry_badges_data(client):
    a = client.get("/api/articles", params={"size": 1}).json()["items"][0]
    assert a["topic"] in a["topic_probs"] and a["sentiment"] in a["sentiment_probs"]
    assert client.get(f"/api/articles/{a['id']}").json()["id"] == a["id"]


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"page": 0}, 422, "page: Input should be greater than or equal to 1"),
        ({"sentiment": "gloomy"}, 422, "sentiment: Input should be"),
        ({"size": 1000}, 422, "size: Input should be less than or equal to 100"),
        ({"since": "2026-01-05T09:00:00"}, 422, "since: must be an RFC 3339 date-time with a tim"),
        ({"since": "2026-01-06T00:00:00Z", "until": "2026-01-05T00:00:00Z"}, 400, "before"),
    ],
)
def test_bad_input_is_a_json_error_with_a_message(client, params, status, message):
    resp = client.get("/api/articles", params=params)
    assert resp.status_code == status
    assert message in resp.json()["error"]


def test_unknown_ids_are_404_json(client):
    for path in ("/api/articles/nope", "/api/alerts/nope", "/api/nothing-here"):
        resp = client.get(path)
        assert resp.status_code == 404 and "error" in resp.json(), path
    assert client.post("/api/alerts/nope/ack", json={}).status_code == 404


def test_rates_draw_the_rule_detector_baseline_and_threshold(client):
    r = client.get("/api/rates", params={"scope": "global"}).json()
    assert r["step_s"] == 300 and r["rule"] == "global-negative-share"
    points = r["points"]
    assert len(points) == 60
    filled = [p for p in points if p["total"]]
    assert len(filled) == 40 and filled[-1]["end"] == points[-1]["end"]  # anchored on data
    calm, burst = filled[20], filled[-1]
    assert calm["share"] == pytest.approx(0.1) and burst["share"] == pytest.approx(0.9)
    assert calm["baseline"] == pytest.approx(0.1, abs=0.05)
    assert calm["share"] < calm["threshold"] < burst["share"]

    topic = client.get("/api/rates", params={"scope": "topic", "key": "Earnings"}).json()
    assert topic["step_s"] == 900 and topic["rule"] == "topic-negative-share"
    ticker = client.get("/api/rates", params={"scope": "ticker", "key": "ACME"}).json()
    assert ticker["rule"] is None  # a count detector has no share baseline to draw
    assert sum(p["negative"] for p in ticker["points"]) == 90


def test_rates_by_key_are_the_small_multiples(client):
    r = client.get("/api/rates/by-key", params={"scope": "topic"}).json()
    by_key = {k["key"]: k for k in r["keys"]}
    assert set(by_key) == {"Earnings", "Macro", "Markets"}
    assert by_key["Earnings"]["recent_share"] > 0.8
    assert by_key["Macro"]["recent_share"] is None  # quiet lately: no share, not 0%
    assert by_key["Macro"]["negative"] / by_key["Macro"]["total"] < 0.5
    assert client.get("/api/rates/by-key", params={"scope": "global"}).status_code == 422


def test_facets_list_what_to_drill_into(client):
    f = client.get("/api/facets").json()
    assert {"ACME", "MSFT"} <= set(f["tickers"])
    assert {"wire", "newsdesk"} <= set(f["sources"])
    assert "Earnings" in f["topics"] and len(f["topics"]) >= 20


def test_firing_alerts_come_with_evidence_and_can_be_acknowledged(client):
    firing = client.get("/api/alerts").json()["items"]
    by_rule = {a["rule"]: a for a in firing}
    alert = by_rule["global-negative-share"]
    assert alert["state"] == "firing" and alert["ack"] is None
    assert alert["observed_rate"] > alert["baseline_rate"]
    assert alert["evidence"] and "profit warning" in alert["evidence"][0]["title"]

    acked = client.post(
        f"/api/alerts/{alert['id']}/ack", json={"by": "ana", "comment": "on it"}
    ).json()
    assert acked["ack"]["by"] == "ana" and acked["ack"]["comment"] == "on it"
    again = client.get(f"/api/alerts/{alert['id']}").json()
    assert again["ack"]["by"] == "ana"
    history = client.get("/api/alerts", params={"state": "all"}).json()["items"]
    assert {a["id"] for a in history} >= {a["id"] for a in firing}


def test_silences_mute_matching_alerts(client):
    firing = client.get("/api/alerts").json()["items"]
    topic = next(a for a in firing if a["scope"] == "topic")
    created = client.post(
        "/api/silences",
        json={"scope": "topic", "key": topic["key"], "duration_s": 3600, "comment": "known"},
    )
    assert created.status_code == 201
    silence = created.json()
    assert set(silence["matchers"]) == {"scope=topic", f"key={topic['key']}"}
    assert [s["id"] for s in client.get("/api/silences").json()["items"]] == [silence["id"]]
    assert client.get(f"/api/alerts/{topic['id']}").json()["silenced"] is True
    others = [a for a in client.get("/api/alerts").json()["items"] if a["scope"] != "topic"]
    assert not any(a["silenced"] for a in others)

    assert client.delete(f"/api/silences/{silence['id']}").status_code == 204
    assert client.delete(f"/api/silences/{silence['id']}").status_code == 404
    assert client.get(f"/api/alerts/{topic['id']}").json()["silenced"] is False


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"key": "x"}, "exactly one of duration_s and ends_at"),
        ({"duration_s": 3600}, "at least one matcher"),
        ({"key": "x", "duration_s": 5}, "duration_s: Input should be greater than or equal to 60"),
        ({"matchers": ["colour=red"], "duration_s": 600}, "matcher label 'colour' unknown"),
        ({"key": "x", "duration_s": 600, "extra": 1}, "extra: Extra inputs are not permitted"),
    ],
)
def test_bad_silences_are_refused_with_the_reason(client, body, message):
    resp = client.post("/api/silences", json=body)
    assert resp.status_code in (400, 422)
    assert message in resp.json()["error"]


def feedback(client, article_id: str, task: str, label: str):
    return client.post(
        "/api/feedback", json={"article_id": article_id, "task": task, "label": label}
    )


def test_feedback_is_stored_where_retrain_reads_it(client, services):
    a = client.get("/api/articles", params={"q": "profit warning", "size": 1}).json()["items"][0]
    r = client.post(
        "/api/feedback",
        json={"article_id": a["id"], "task": "topic", "label": "Legal | Regulation"},
    )
    assert r.status_code == 201
    assert r.json() == {
        "stored": True, "task": "topic", "label": "Legal | Regulation",
        "predicted": "Earnings", "feedback_rows": 1,
    }  # fmt: skip
    client.post(
        "/api/feedback", json={"article_id": a["id"], "task": "sentiment", "label": "Bullish"}
    )
    rows = [json.loads(line) for line in services.feedback.path.read_text().splitlines()]
    assert rows[1]["label"] == "positive" and rows[1]["article_id"] == a["id"]
    assert rows[0]["text"].startswith(a["title"])
    loaded = load_feedback(services.feedback.path)  # what `finpulse retrain --feedback` reads
    assert loaded["topic"].labels == ["Legal | Regulation"]
    assert loaded["sentiment"].labels == ["positive"]


def test_bad_feedback_is_refused(client):
    a = client.get("/api/articles", params={"size": 1}).json()["items"][0]
    bad_label = client.post(
        "/api/feedback", json={"article_id": a["id"], "task": "topic", "label": "Sports"}
    )
    assert bad_label.status_code == 400 and "Sports" in bad_label.json()["error"]
    bad_task = client.post(
        "/api/feedback", json={"article_id": a["id"], "task": "tone", "label": "x"}
    )
    assert bad_task.status_code == 422 and "task" in bad_task.json()["error"]
    missing = client.post(
        "/api/feedback", json={"article_id": "nope", "task": "topic", "label": "IPO"}
    )
    assert missing.status_code == 404


def test_model_info_without_a_promoted_champion_is_the_shipped_model(client):
    m = client.get("/api/model").json()
    assert m["version"] == SHIPPED and len(m["topics"]) == 20
    if SHIPPED:  # what its metrics were measured on, and where it came from
        assert m["origin"]["kind"] == "shipped" and "(sha256 " in m["metrics_data"]
        assert m["versions"] == [SHIPPED] and not m["generated_data"]
    else:
        assert m["versions"] == []
    # The path a scorer with these settings picks here, and why (issue 20).
    from model.device import scoring_plan

    plan = scoring_plan("auto", "auto")
    assert m["scoring"] == {**plan.describe(), "host": socket.gethostname()}


def test_openapi_documents_every_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("articles", "rates", "alerts", "alerts/{alert_id}/ack", "silences", "feedback",
              "health", "model", "events"):  # fmt: skip
        assert f"/api/{p}" in paths, p


def test_page_is_served_and_references_nothing_external(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>finpulse</title>" in page.text
    assert client.get("/static/app.js").status_code == 200
    for f in STATIC.iterdir():
        text = f.read_text().replace('"http://www.w3.org/2000/svg"', "")  # a namespace name
        assert re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text) == [], f.name


def test_token_guards_every_api_call(tmp_path, services):
    services.api = ApiSettings(auth_token="s3cret")
    with TestClient(create_app(services), base_url=LOCAL) as c:
        refused = c.get("/api/health")
        assert refused.status_code == 401 and "token" in refused.json()["error"]
        assert c.get("/api/alerts", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = c.get("/api/health", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert c.get("/").status_code == 200  # the page itself holds no data


def test_non_loopback_bind_needs_a_real_token(tmp_path):
    _, api = make_settings(tmp_path, host="0.0.0.0")
    with pytest.raises(BindRefused, match=r"the API on 0\.0\.0\.0:8080 without an auth token"):
        check_bind(api)
    with pytest.raises(BindRefused, match="without a token this short"):
        check_bind(ApiSettings(host="0.0.0.0", auth_token="t"))
    with pytest.raises(BindRefused, match=r"API metrics on 0\.0\.0\.0:18002 without an auth"):
        check_bind(ApiSettings(metrics_host="0.0.0.0"))
    check_bind(ApiSettings(host="0.0.0.0", metrics_host="0.0.0.0", auth_token="x" * 16))
    check_bind(ApiSettings(metrics_host="0.0.0.0", metrics_port=0))  # no metrics listener
    check_bind(make_settings(tmp_path, host="::1")[1])


def test_event_stream_sends_updates_then_stops(services):
    async def run() -> tuple[str, list[str]]:
        stream = EventStream(services)
        frames = stream.follow()
        first = await anext(frames)
        stream.stop()
        return first, [f async for f in frames]

    first, rest = asyncio.run(run())
    event, data = first.split("\n")[:2]
    assert event == "event: update"
    payload = json.loads(data.removeprefix("data: "))
    assert payload["articles"] == 400 and payload["new"] == 0 and payload["firing"]
    assert rest == []


def test_services_open_from_settings(tmp_path):
    settings, api = make_settings(tmp_path)
    services = Services.from_settings(settings, api)
    try:
        assert services.store.count() == 0 and services.alerts.list_alerts() == []
    finally:
        services.close()
