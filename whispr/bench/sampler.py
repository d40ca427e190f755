"""What a node holds, read from outside its process: a soak run's samples.

Everything here looks at the node the way an operator's tools would, never from inside it:
``psutil`` on the node's PID (resident memory, open file descriptors, threads), its
``GET /metrics`` (connections open, conversation actors alive), and the services' own views
of their clients (PostgreSQL's ``pg_stat_activity``, Redis's ``CLIENT LIST``). A leak the
node's own bookkeeping misses (a socket it forgot it had) still shows in these.

The services' counts keep only the connections whose client end is a socket of one of the
nodes measured (matched by local port through ``psutil``): the same database and Redis may
serve other nodes at the same moment (tests, another run), which would otherwise be counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import psutil
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["METRICS", "Sampler"]

#: The series of a sample, with what each is.
METRICS: dict[str, str] = {
    "rss_bytes": "resident memory of the node processes",
    "open_fds": "open file descriptors of the node processes",
    "threads": "threads of the node processes",
    "connections": "WebSocket connections open (whispr_gateway_connections)",
    "conversation_actors": "conversation actors alive (whispr_conversation_actors)",
    "postgres_connections": "PostgreSQL sessions of the nodes (pg_stat_activity)",
    "redis_connections": "Redis clients of the nodes (CLIENT LIST)",
}

#: The node's /metrics gauges a sample reads, by the series they fill.
_GAUGES = {
    "whispr_gateway_connections": "connections",
    "whispr_conversation_actors": "conversation_actors",
}
#: What PostgreSQL records for the store's sessions (``SESSION_SETTINGS`` in the store).
_APPLICATION_NAME = "whispr"


def _scrape(port: int) -> dict[str, float]:
    """The node's gauges we sample, from its ``/metrics`` (label sets summed)."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        series = _GAUGES.get(family.name)
        if series is not None:
            found[series] = sum(sample.value for sample in family.samples)
    return found


def _local_ports(pids: Sequence[int], remote_port: int) -> set[int]:
    """Local ports of the TCP sockets the processes ``pids`` hold to ``remote_port``."""
    ports: set[int] = set()
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            for conn in psutil.Process(pid).net_connections(kind="tcp"):
                if conn.raddr and conn.raddr.port == remote_port:
                    ports.add(conn.laddr.port)
    return ports


@dataclass
class Sampler:
    """Samples the nodes ``pids`` (HTTP ``ports``) and, when given, their services."""

    pids: list[int]
    ports: list[int]
    database_url: str | None = None
    redis_url: str | None = None
    _database: Any = field(default=None, init=False)
    _redis: Any = field(default=None, init=False)

    async def open(self) -> None:
        """Connect to the services, under a name of its own (not counted as a node's)."""
        if self.database_url:
            import asyncpg

            self._database = await asyncpg.connect(
                self.database_url, server_settings={"application_name": "whispr-soak"}
            )
        if self.redis_url:
            import redis.asyncio

            self._redis = redis.asyncio.Redis.from_url(self.redis_url)

    async def close(self) -> None:
        """Close the connections :meth:`open` made."""
        if self._database is not None:
            await self._database.close()
        if self._redis is not None:
            await self._redis.aclose()

    async def sample(self) -> dict[str, float | None]:
        """One value per series of :data:`METRICS` (None: not measured in this setup)."""
        values: dict[str, float | None] = dict.fromkeys(METRICS)
        values.update(self._process())
        try:
            for port in self.ports:
                for name, value in (await asyncio.to_thread(_scrape, port)).items():
                    values[name] = (values[name] or 0.0) + value
        except OSError:
            # A node too busy to answer /metrics within the timeout (a loaded machine, a
            # node being profiled): this sample has no gauges (a partial sum over the nodes
            # would read as a drop); the run goes on and the trend skips the point.
            values.update(dict.fromkeys(_GAUGES.values()))
        if self._database is not None:
            values["postgres_connections"] = await self._postgres()
        if self._redis is not None:
            values["redis_connections"] = await self._redis_clients()
        return values

    def _process(self) -> dict[str, float | None]:
        rss = fds = threads = 0
        for pid in self.pids:
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(pid)
                with process.oneshot():
                    rss += process.memory_info().rss
                    fds += process.num_fds()
                    threads += process.num_threads()
        return {"rss_bytes": rss, "open_fds": fds, "threads": threads}

    async def _postgres(self) -> float:
        port = urlsplit(self.database_url).port or 5432
        ours = await asyncio.to_thread(_local_ports, self.pids, port)
        rows = await self._database.fetch(
            "SELECT client_port FROM pg_stat_activity WHERE application_name = $1",
            _APPLICATION_NAME,
        )
        return float(sum(1 for row in rows if row["client_port"] in ours))

    async def _redis_clients(self) -> float:
        port = urlsplit(self.redis_url).port or 6379
        ours = await asyncio.to_thread(_local_ports, self.pids, port)
        clients = await self._redis.client_list()
        return float(sum(1 for client in clients if int(client["addr"].rsplit(":", 1)[1]) in ours))
