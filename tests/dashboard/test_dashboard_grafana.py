"""Every Grafana panel must query metrics finpulse really exports (or its recording rules)."""

import json
import re
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry

from alerts.metrics import AlertMetrics
from dashboard.metrics import ApiMetrics
from finpulse.config import KafkaSettings
from ingest.metrics import CrawlerMetrics
from ingest.sinks.kafka_sink import KafkaSink
from stream.metrics import StreamMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/finpulse.json"
RULES = ROOT / "deploy/prometheus/rules"

# Sample names each metric type exposes, from the family name prometheus_client reports.
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum", ""),
    "info": ("_info",),
}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "inf", "nan",
}  # fmt: skip


def exported_names() -> set[str]:
    registry = CollectorRegistry()
    for metrics in (StreamMetrics, CrawlerMetrics, AlertMetrics, ApiMetrics):
        metrics(registry)
    KafkaSink(KafkaSettings(), create_topic=False, registry=registry)  # delivery failures
    names = set()
    for family in registry.collect():
        names.update(family.name + s for s in SUFFIXES[family.type])
    return names


def recorded_names() -> set[str]:
    names = set()
    for path in RULES.glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names.update(r["record"] for r in group["rules"] if "record" in r)
    return names


def panel_exprs() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    return [
        (p["title"], t["expr"])
        for p in dash["panels"]
        if p["type"] != "row"
        for t in p.get("targets", [])
    ]


def metric_names(expr: str) -> set[str]:
    """Identifiers in a PromQL expression that name series (not functions, labels or keywords).

    >>> sorted(metric_names('sum by (le) (rate(a_total{x="y"}[5m])) / b:c'))
    ['a_total', 'b:c']
    """
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr
    )  # label lists
    tokens = re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*(?=\s*(\(?))", expr)
    return {m.group(0) for m in tokens if not m.group(1) and m.group(0).lower() not in PROMQL_WORDS}


def test_dashboard_has_the_issue_panels():
    titles = " ".join(t for t, _ in panel_exprs()).lower()
    for topic in ("articles scored", "lag", "latency", "negative share", "alerts firing", "fetch"):
        assert topic in titles


def test_every_panel_queries_an_exported_metric():
    known = exported_names() | recorded_names()
    assert "finpulse_articles_scored_total" in known
    unknown = {
        (title, name)
        for title, expr in panel_exprs()
        for name in metric_names(expr)
        if name not in known
    }
    assert not unknown, f"panels query metrics finpulse does not export: {sorted(unknown)}"


def test_extractor_sees_through_promql_syntax():
    got = metric_names(
        "histogram_quantile(0.95, sum by (le, since)"
        ' (rate(x_bucket{since="a b"}[$__rate_interval])))'
        " + time() - max by (source) (y) and on (topic) z:r:5m > bool 0.6"
    )
    assert got == {"x_bucket", "y", "z:r:5m"}


def test_provisioning_points_at_the_dashboards():
    prov = ROOT / "deploy/grafana/provisioning"
    ds = yaml.safe_load((prov / "datasources/finpulse.yml").read_text())
    assert ds["datasources"][0]["type"] == "prometheus"
    dashboards = yaml.safe_load((prov / "dashboards/finpulse.yml").read_text())
    assert dashboards["providers"][0]["type"] == "file"


@pytest.mark.integration
def test_every_expression_parses_in_the_real_prometheus():
    for title, expr in panel_exprs():
        query = expr.replace("$__rate_interval", "1m")
        resp = httpx.get("http://127.0.0.1:19090/api/v1/query", params={"query": query}, timeout=10)
        assert resp.status_code == 200, f"{title}: {resp.text}"
