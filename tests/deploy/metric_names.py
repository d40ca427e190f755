"""The metric names a dashboard or an alert rule may use, and the names a PromQL query uses.

What a node exposes is read from a live scrape (``scrape_node``); what other work promises
to expose but may not have landed yet is in :data:`AGREED`, the one list to extend when a
metric is agreed. A name in a query that is in neither is a panel that would stay empty or
an alert that could never fire.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import re
import tempfile
import urllib.request
from typing import Literal

import promql_parser
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["AGREED", "PROMETHEUS_OWN", "exposed_names", "names_in_query", "scrape_node"]

Kind = Literal["counter", "gauge", "histogram"]

#: Metrics agreed across the team that a live scrape of today's node may not show yet
#: (exposition names: counters end in ``_total``, histograms are their base name).
AGREED: dict[str, Kind] = {
    "whispr_supervisor_restarts_total": "counter",  # labels supervisor, child_kind, reason
    "whispr_actors": "gauge",  # label kind: conversation, connection
    "whispr_store_breaker_state": "gauge",  # 0 closed, 1 half-open, 2 open
    "whispr_store_call_seconds": "histogram",  # labels operation, outcome
    "whispr_broker_connected": "gauge",  # 0/1
    "whispr_sibling_breaker_state": "gauge",  # label sibling; 0 closed, 1 half-open, 2 open
}

#: Series Prometheus makes itself for every target.
PROMETHEUS_OWN = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

_HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def exposed_names(exposition: str) -> frozenset[str]:
    """Every series name a scrape holds, agreed names and Prometheus' own."""
    names = {
        sample.name
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }
    for name, kind in AGREED.items():
        if kind == "histogram":
            names.update(name + suffix for suffix in _HISTOGRAM_SUFFIXES)
        else:
            names.add(name)
    return frozenset(names | PROMETHEUS_OWN)


#: Grafana's variables, replaced by values of the same kind so the query parses.
_GRAFANA_VARIABLE = re.compile(r"\$\{?(__rate_interval|__interval|__range|[A-Za-z_]\w*)\}?")
_GRAFANA_VALUES = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}


def names_in_query(query: str) -> frozenset[str]:
    """The metric names a PromQL query selects (Grafana variables allowed).

    Raises ``ValueError`` when the query does not parse, and when a selector has no
    metric name (``{job="x"}``), which no check of names could cover.
    """
    text = _GRAFANA_VARIABLE.sub(lambda m: _GRAFANA_VALUES.get(m.group(1), "x"), query)
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name is None:
                raise ValueError(f"a selector without a metric name in {query!r}")
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(text), visit)
    return frozenset(names)


def scrape_node() -> str:
    """Start an embedded node, give it some traffic, and return its ``/metrics`` text.

    Runs in a thread of its own with its own event loop, so a sync fixture can call it.
    The traffic makes the labelled series appear: a connection, a join, pushes (one of an
    unknown event, an error), a gRPC call, calls to a sibling service (a stand-in) and a
    fallback when it fails.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _scrape()).result()


async def _scrape() -> str:
    import grpc

    from supervisors import stop_tree
    from tests.gateway.conftest import start_node, unique
    from tests.siblings.conftest import TOKEN, StandIn
    from whispr.client import ReplyError
    from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2 as pb
    from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2_grpc as pb_grpc

    siblings = StandIn()
    await siblings.start()
    with tempfile.TemporaryDirectory() as tmp:
        running = await start_node(
            {
                "WHISPR_SQLITE_PATH": f"{tmp}/node.db",
                "WHISPR_GRPC_TOKENS": "ops=scrape-token",
                # Moderation answers (sibling calls); the others are not configured.
                "WHISPR_MODERATION_SERVICE_URL": siblings.address,
                "WHISPR_SIBLING_TOKEN": TOKEN,
                "WHISPR_SIBLING_DEADLINE_S": "0.3",
            }
        )
        try:
            ada, bob = unique("ada"), unique("bob")
            conversation = await running.node.messaging.get().create_group(ada, "t", [bob])
            topic = f"conversation:{conversation.id}"
            async with running.client(ada) as client:
                await client.join(topic)
                await client.push(topic, "send_message", {"client_id": "m1", "content": "hi"})
                # Moderation fails: the send goes through on the fail-open fallback.
                siblings.moderation.mode = "fail"
                await client.push(topic, "send_message", {"client_id": "m2", "content": "hi"})
                with contextlib.suppress(ReplyError):
                    await client.push(topic, "no-such-event", {})
            address = f"127.0.0.1:{running.node.grpc.get().port}"
            async with grpc.aio.insecure_channel(address) as channel:
                await pb_grpc.MessagingServiceStub(channel).CreateConversation(
                    pb.CreateConversationRequest(kind=pb.CONVERSATION_KIND_GROUP, creator_id=ada),
                    metadata=(("authorization", "Bearer scrape-token"),),
                )
            # A connection's counts are published when it ends: wait for them.
            for _ in range(50):
                body = await asyncio.to_thread(_get, running.http + "/metrics")
                if "whispr_gateway_messages_out_total" in body:
                    return body
                await asyncio.sleep(0.1)
            return body
        finally:
            await stop_tree(running.root, deadline=10)
            await siblings.stop()


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())
