"""The Grafana dashboard (deploy/grafana/): every query parses and uses metrics that exist."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.deploy.conftest import ROOT
from tests.deploy.metric_names import AGREED, exposed_names, names_in_query

DASHBOARD = ROOT / "deploy" / "grafana" / "whispr-dashboard.json"

#: What the dashboard must show (issue 18): a metric for each.
REQUIRED_METRICS = frozenset(
    {
        "whispr_gateway_connections",  # connections
        "whispr_gateway_joins_total",  # joins
        "whispr_gateway_messages_in_total",  # message rate
        "whispr_gateway_push_seconds_bucket",  # P50/P95/P99 push latency
        "whispr_gateway_errors_total",  # errors by reason
        "whispr_supervisor_restarts_total",  # restarts
        "whispr_store_breaker_state",  # store health
        "whispr_store_call_seconds_count",
        "whispr_broker_connected",  # Redis health
        "whispr_sibling_breaker_state",  # breaker states
    }
)

_LABEL_VALUES = re.compile(r"^label_values\((?P<query>.+),\s*\w+\)$")


def _dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def _panels(container: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in container.get("panels", []):
        yield panel
        yield from _panels(panel)


def _queries() -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    dashboard = _dashboard()
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = _LABEL_VALUES.match(variable["query"]["query"])
            assert match, variable
            yield f"variable {variable['name']!r}", match["query"]


def test_the_query_check_finds_names_and_refuses_what_it_cannot_check() -> None:
    query = 'histogram_quantile(0.9, sum by (le) (rate(a_bucket{x=~"$node"}[$__rate_interval])))'
    assert names_in_query(query + " / on() b") == {"a_bucket", "b"}
    with pytest.raises(ValueError, match="without a metric name"):
        names_in_query('{job="whispr"}')
    with pytest.raises(ValueError, match=r"unclosed|expected|unexpected"):
        names_in_query("rate(a[5m]")
    assert "whispr_store_call_seconds_bucket" in exposed_names("")
    assert "made_up_total" not in exposed_names("")


@pytest.mark.slow
def test_every_query_uses_only_metrics_the_nodes_expose(known_metrics: frozenset[str]) -> None:
    used: set[str] = set()
    for where, query in _queries():
        names = names_in_query(query)
        assert names <= known_metrics, (where, query, names - known_metrics)
        used |= names
    assert used >= REQUIRED_METRICS, REQUIRED_METRICS - used


@pytest.mark.slow
def test_a_live_scrape_shows_what_is_not_merely_agreed(known_metrics: frozenset[str]) -> None:
    """The scrape is real: today's gateway metrics come from it, not from the agreed list."""
    assert not {name for name in AGREED if name.startswith("whispr_gateway_")}
    for name in ["whispr_gateway_push_seconds_bucket", "whispr_gateway_errors_total"]:
        assert name in known_metrics


def test_push_latency_is_shown_at_the_three_quantiles() -> None:
    quantiles = set()
    for _, query in _queries():
        pattern = r"histogram_quantile\((0\.\d+), .*whispr_gateway_push_seconds_bucket"
        match = re.match(pattern, query)
        if match:
            quantiles.add(match[1])
    assert quantiles >= {"0.5", "0.95", "0.99"}


def test_the_dashboard_is_portable() -> None:
    """Panels read the data source variable; ids are unique; the uid is fixed for links."""
    dashboard = _dashboard()
    assert dashboard["uid"] == "whispr-overview"
    panels = list(_panels(dashboard))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert variables == {"datasource", "job", "instance"}
