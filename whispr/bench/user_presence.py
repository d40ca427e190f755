"""What a user in many conversations costs user presence when they connect and disconnect.

One node in this process, on PostgreSQL (``--database-url``, a fresh schema) or SQLite, and
on a private Redis started for the run (so that Redis's own command counts are this run's
alone). A user is put in ``--conversations`` direct conversations (one contact each); then,
``--rounds`` times, they connect, join ``user:<id>`` and wait for ``presence_state``
(connect), and close and wait until presence says offline (disconnect). Reported per
round, as medians: wall time, this process's CPU time (client and node together), and the
Redis commands the node sent, by command (``INFO commandstats``), with and without the
``user:`` channel's conversation notices, which subscribe to each conversation's topic.

Run: ``python -m whispr.bench.user_presence --database-url postgresql://...``
(docs/performance.md, "User presence", holds the figures).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from supervisors import stop_tree
from whispr.auth import issue_token
from whispr.bench.chaos_services import PrivateRedis
from whispr.bench.nodes import free_port
from whispr.client import PhoenixClient
from whispr.config import load_settings
from whispr.node import Node, start_root
from whispr.user_presence import UserPresence

__all__ = ["main", "run"]


async def _commandstats(client: aioredis.Redis) -> Counter[str]:
    stats: dict[str, Any] = await client.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()})


async def _until(presence: UserPresence, user: str, status: str) -> None:
    """Wait until presence says ``user`` is ``status`` (polled: no event to wait on here)."""
    for _ in range(60_000):
        meta = (await presence.get([user])).get(user)
        if meta is not None and meta.status == status:
            return
        await asyncio.sleep(0.001)
    msg = f"{user} never became {status}"
    raise TimeoutError(msg)


async def run(database_url: str | None, conversations: int, rounds: int) -> dict[str, Any]:
    """Measure; return the medians (see the module's docstring)."""
    with tempfile.TemporaryDirectory() as workdir:
        redis_server = PrivateRedis(Path(workdir))
        redis_server.start()
        try:
            return await _measure(workdir, redis_server.url, database_url, conversations, rounds)
        finally:
            redis_server.stop()


async def _measure(
    workdir: str, redis_url: str, database_url: str | None, conversations: int, rounds: int
) -> dict[str, Any]:
    env = {
        "WHISPR_HOST": "127.0.0.1",
        "WHISPR_PORT": "0",
        "WHISPR_GRPC_PORT": str(free_port()),
        "WHISPR_HTTP_PORT": str(free_port()),
        "WHISPR_REDIS_URL": redis_url,
        "WHISPR_SQLITE_PATH": str(Path(workdir) / "bench.db"),
        "WHISPR_LOG_LEVEL": "warning",
    }
    if database_url:
        schema = f"bench_presence_{uuid.uuid4().hex[:8]}"
        separator = "&" if "?" in database_url else "?"
        env["WHISPR_DATABASE_URL"] = f"{database_url}{separator}options=-csearch_path%3D{schema}"
        import asyncpg

        connection = await asyncpg.connect(database_url)
        await connection.execute(f"CREATE SCHEMA {schema}")
        await connection.close()
    settings = load_settings(env=env)
    node = Node(settings)
    root = start_root(node)
    await root.started()
    counts = aioredis.from_url(redis_url)
    try:
        messaging = node.messaging.get()
        user = "presence-bench-user"
        for n in range(conversations):
            await messaging.direct(user, f"contact-{n}")
        url = f"ws://127.0.0.1:{node.gateway.get().port}/socket/websocket"
        token = issue_token(user, secret=settings.jwt_secret, device_id="bench")
        presence = node.user_presence.get()
        samples: dict[str, list[float]] = {"connect_s": [], "connect_cpu_s": []}
        samples |= {"disconnect_s": [], "disconnect_cpu_s": []}
        commands: dict[str, list[Counter[str]]] = {"connect": [], "disconnect": []}
        for _ in range(rounds):
            before = await _commandstats(counts)
            cpu, wall = time.process_time(), time.perf_counter()
            client_cm = PhoenixClient.connect(url, token)
            client = await client_cm.__aenter__()
            await client.join(f"user:{user}")
            await client.next_event(f"user:{user}", "presence_state", timeout=60)
            await _until(presence, user, "online")
            samples["connect_s"].append(time.perf_counter() - wall)
            samples["connect_cpu_s"].append(time.process_time() - cpu)
            commands["connect"].append(await _commandstats(counts) - before)
            before = await _commandstats(counts)
            cpu, wall = time.process_time(), time.perf_counter()
            await client_cm.__aexit__(None, None, None)
            await _until(presence, user, "offline")
            await asyncio.sleep(0.2)  # the unsubscribes that follow the leave
            samples["disconnect_s"].append(time.perf_counter() - wall - 0.2)
            samples["disconnect_cpu_s"].append(time.process_time() - cpu)
            commands["disconnect"].append(await _commandstats(counts) - before)
        result: dict[str, Any] = {
            "conversations": conversations,
            "rounds": rounds,
            "store": "postgresql" if database_url else "sqlite",
        }
        for name, values in samples.items():
            result[name] = round(statistics.median(values), 4)
        for phase, per_round in commands.items():
            names = sorted({name for c in per_round for name in c})
            result[f"{phase}_redis_commands"] = {
                name: statistics.median(c[name] for c in per_round) for name in names
            }
        return result
    finally:
        await counts.aclose()
        await stop_tree(root, deadline=10)


def main(argv: list[str] | None = None) -> None:
    """The command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--conversations", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.database_url, args.conversations, args.rounds))
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
