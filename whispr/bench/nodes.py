"""Node processes on this machine, for the load generator and the multi-node tests.

A node is a real ``whispr serve`` process on a free loopback port, configured through its
environment; it counts as started once ``GET /ready`` answers 200.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["NodeProcess", "free_port", "start_node_process", "start_relay_process"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@dataclass
class NodeProcess:
    """A running ``whispr serve``."""

    name: str
    port: int
    process: asyncio.subprocess.Process

    @property
    def url(self) -> str:
        """Its WebSocket endpoint."""
        return f"ws://127.0.0.1:{self.port}/socket/websocket"

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (drain), then SIGKILL after ``timeout``; the exit status."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            return await self.process.wait()


async def start_node_process(
    name: str, env: Mapping[str, str], *, timeout: float = 60.0
) -> NodeProcess:
    """Start a node named ``name`` with ``env`` over this process's environment.

    Raises:
        RuntimeError: the node exited or was not ready within ``timeout`` seconds.
    """
    port = free_port()
    full_env = {
        **os.environ,
        "WHISPR_LOG_FORMAT": "json",
        "WHISPR_LOG_LEVEL": "warning",
        **env,
        "WHISPR_NODE_NAME": name,
        "WHISPR_PORT": str(port),
        "WHISPR_GRPC_PORT": env.get("WHISPR_GRPC_PORT", str(free_port())),
        "WHISPR_HTTP_PORT": env.get("WHISPR_HTTP_PORT", str(free_port())),
    }
    return await _start(name, port, ["-m", "whispr.cli", "serve"], full_env, timeout)


async def start_relay_process(*, timeout: float = 30.0) -> NodeProcess:
    """Start the bare relay (:mod:`whispr.bench.relay`) on a free port."""
    port = free_port()
    argv = ["-m", "whispr.bench.relay", "--port", str(port)]
    return await _start("relay", port, argv, dict(os.environ), timeout)


async def _start(
    name: str, port: int, argv: list[str], env: Mapping[str, str], timeout: float
) -> NodeProcess:
    process = await asyncio.create_subprocess_exec(sys.executable, *argv, env=env)
    node = NodeProcess(name, port, process)
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(_ready, port):
        if process.returncode is not None or time.monotonic() > deadline:
            await node.stop(timeout=5)
            msg = f"{name} did not become ready (exit status {process.returncode})"
            raise RuntimeError(msg)
        await asyncio.sleep(0.1)
    return node
