"""gRPC benchmark: system messages sent by concurrent callers (``make bench BENCH_ARGS=grpc``).

A node runs in its own process (``whispr serve``, on PostgreSQL and Redis when
they answer, as the gateway benchmark decides); 8 callers in this process,
each on its own channel as sibling services would be, call
``SendSystemMessage`` back to back for the duration, over 8 group
conversations (every caller writes to every conversation in turn, so
conversations see concurrent writers). Each call returns once the message is
durable. Figures: ``send_system_message_per_s`` (calls answered OK per
second) and ``send_p95_ms`` (call latency, client side).

The run ends by checking that the store holds exactly the messages acknowledged.
Writes ``grpc.json``, ``grpc.md`` and ``grpc.png`` (latency distribution).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
from tqdm import tqdm

from whispr.bench.gateway import _services_env
from whispr.bench.nodes import free_port, start_node_process
from whispr.bench.report import (
    machine,
    markdown_table,
    percentile,
    plot_cdf,
    write_json,
    write_text,
)
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2 as pb
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2_grpc as pb_grpc

__all__ = ["run", "run_suite"]

TOKEN = "bench-caller-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
TARGETS = {"send_p95_ms": "< 50"}


async def _caller(
    address: str,
    index: int,
    conversations: list[str],
    until: float,
    latencies: list[float],
    bar: tqdm[Any],
) -> tuple[int, int]:
    """Send back to back until ``until``; return (answered, failed)."""
    answered = failed = 0
    async with grpc.aio.insecure_channel(address) as channel:
        stub: Any = pb_grpc.MessagingServiceStub(channel)  # type: ignore[no-untyped-call]
        n = 0
        while time.monotonic() < until:
            conversation = conversations[(index + n) % len(conversations)]
            request = pb.SendSystemMessageRequest(
                conversation_id=conversation,
                client_id=f"b{index}-{n}",
                event="bench",
            )
            began = time.perf_counter()
            try:
                await stub.SendSystemMessage(request, metadata=AUTH, timeout=10)
            except grpc.aio.AioRpcError:
                failed += 1
            else:
                latencies.append((time.perf_counter() - began) * 1000)
                answered += 1
                bar.update(1)
            n += 1
    return answered, failed


async def _stored(stub: Any, conversations: list[str]) -> int:
    """Messages in the conversations: the sum of their last seqs."""
    total = 0
    for conversation_id in conversations:
        got = await stub.GetConversation(
            pb.GetConversationRequest(conversation_id=conversation_id), metadata=AUTH
        )
        total += got.conversation.last_seq
    return total


async def _measure(
    callers: int, duration: float, workdir: Path, env: dict[str, str]
) -> dict[str, Any]:
    grpc_port = free_port()
    node_env = {
        **env,
        "WHISPR_SQLITE_PATH": str(workdir / "bench.db"),
        "WHISPR_REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
        "WHISPR_GRPC_PORT": str(grpc_port),
        "WHISPR_HTTP_PORT": str(free_port()),
        "WHISPR_GRPC_TOKENS": f"bench={TOKEN}",
    }
    node = await start_node_process("bench-grpc", node_env)
    address = f"127.0.0.1:{grpc_port}"
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub: Any = pb_grpc.MessagingServiceStub(channel)  # type: ignore[no-untyped-call]
            conversations = []
            for n in range(callers):
                created = await stub.CreateConversation(
                    pb.CreateConversationRequest(
                        kind=pb.CONVERSATION_KIND_GROUP,
                        creator_id=f"owner-{n}",
                        title=f"bench {n}",
                        member_ids=[f"member-{n}-{m}" for m in range(4)],
                    ),
                    metadata=AUTH,
                )
                conversations.append(created.conversation.id)
            before = await _stored(stub, conversations)
        latencies: list[float] = []
        began = time.monotonic()
        until = began + duration
        with tqdm(desc="system messages", unit="msg", mininterval=1.0) as bar:
            results = await asyncio.gather(
                *(_caller(address, i, conversations, until, latencies, bar) for i in range(callers))
            )
        elapsed = time.monotonic() - began
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.MessagingServiceStub(channel)  # type: ignore[no-untyped-call]
            stored = await _stored(stub, conversations) - before
    finally:
        await node.stop()
    answered = sum(r[0] for r in results)
    if stored != answered:  # every acknowledged message is in the store, once
        msg = f"{stored} messages stored for {answered} acknowledged"
        raise AssertionError(msg)
    return {
        "callers": callers,
        "duration_s": round(elapsed, 2),
        "store": "postgresql" if env else "sqlite",
        "messages_answered": answered,
        "messages_failed": sum(r[1] for r in results),
        "send_system_message_per_s": round(answered / elapsed, 1),
        "send_p50_ms": round(percentile(latencies, 0.50), 2) if latencies else None,
        "send_p95_ms": round(percentile(latencies, 0.95), 2) if latencies else None,
        "send_p99_ms": round(percentile(latencies, 0.99), 2) if latencies else None,
        "latency_samples_ms": latencies,
    }


def _markdown(figures: dict[str, Any], command: str) -> str:
    rows = [
        ["send_system_message_per_s", figures["send_system_message_per_s"], ""],
        ["send_p50_ms", figures["send_p50_ms"], ""],
        ["send_p95_ms", figures["send_p95_ms"], TARGETS["send_p95_ms"]],
        ["send_p99_ms", figures["send_p99_ms"], ""],
    ]
    return (
        "# gRPC: SendSystemMessage from concurrent callers\n\n"
        f"{figures['callers']} callers, each on its own channel, back to back for "
        f"{figures['duration_s']:g} s against one node on {figures['store']}; "
        f"{figures['messages_answered']:,} messages durable, "
        f"{figures['messages_failed']:,} failed.\n\n"
        + markdown_table(["figure", "value", "target"], rows)
        + f"\nReproduce: `{command}`. Callers and node share this machine's cores.\n"
    )


def run(out: Path, *, callers: int = 8, duration: float = 10.0, command: str) -> dict[str, Any]:
    """Measure; write grpc.json, grpc.md and grpc.png under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    workdir = out / ".grpc-work"
    workdir.mkdir(exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (workdir / "bench.db").unlink()
    figures = asyncio.run(_measure(callers, duration, workdir, _services_env()))
    samples = figures.pop("latency_samples_ms")
    report = {**figures, "machine": machine(), "targets": TARGETS}
    write_json(out / "grpc.json", report)
    text = _markdown(figures, command)
    write_text(out / "grpc.md", text)
    if samples:
        plot_cdf(
            out / "grpc.png",
            {"SendSystemMessage": samples},
            title="gRPC: SendSystemMessage latency, 8 callers",
            xlabel="ms",
            marks={"50 ms": 50.0},
        )
    print(text, flush=True)
    return report


def run_suite(out: Path, quick: bool = False) -> dict[str, Any]:
    """The ``make bench`` scenario: 8 callers for 10 s (3 s with ``quick``)."""
    return run(out, duration=3.0 if quick else 10.0, command="make bench BENCH_ARGS=grpc")
