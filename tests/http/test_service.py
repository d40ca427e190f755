"""The HTTP API as a service of the node: its problems table, its start and its drain.

A node process stopped with SIGTERM drains its HTTP server (stopped before the gateway,
since it was started after it): the signal is the node's, not uvicorn's, the process exits
0 well within its deadline, and the port is closed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import pytest

from actors.errors import Reason, WhisprError
from tests.http.conftest import Api, problem
from whispr.bench.nodes import free_port
from whispr.http.problems import STATUS_BY_REASON, problem_response

pytestmark = pytest.mark.timeout(120)


def test_every_reason_has_a_status() -> None:
    assert set(STATUS_BY_REASON) == set(Reason)
    assert all(400 <= status < 600 for status in STATUS_BY_REASON.values())


@pytest.mark.parametrize("reason", list(Reason))
def test_a_refusal_is_a_problem_document(reason: Reason) -> None:
    error = WhisprError(reason, "no \ud800 way", field="seq", retry_after=1.2)
    response = problem_response(error)
    body: dict[str, Any] = response.content
    assert response.status_code == STATUS_BY_REASON[reason]
    assert response.media_type == "application/problem+json"
    assert body["type"] == f"urn:whispr:problem:{reason.value}"
    assert body["title"] == HTTPStatus(response.status_code).phrase
    assert body["reason"] == reason.value
    assert body["field"] == "seq"
    assert body["detail"] == "no \\ud800 way"  # a lone surrogate, escaped: still encodable
    assert response.headers["Retry-After"] == "2"


async def _records(stream: asyncio.StreamReader, until: str) -> list[dict[str, Any]]:
    records = []
    while True:
        line = await stream.readline()
        assert line, f"the node exited before {until!r}"
        record = json.loads(line) if line.startswith(b"{") else {}
        records.append(record)
        if record.get("event") == until:
            return records


async def test_sigterm_drains_the_http_server_before_the_gateway(tmp_path: Path) -> None:
    http_port = free_port()
    env = {
        **os.environ,
        "WHISPR_PORT": str(free_port()),
        "WHISPR_GRPC_PORT": str(free_port()),
        "WHISPR_HTTP_PORT": str(http_port),
        "WHISPR_SQLITE_PATH": str(tmp_path / "node.db"),
        "WHISPR_DATABASE_URL": "",
        "WHISPR_REDIS_URL": "",
        "WHISPR_LOG_FORMAT": "json",
        "WHISPR_LOG_LEVEL": "info",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "whispr.cli", "serve", env=env, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(60):
            await _records(process.stderr, "node up")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as client:
            response = await client.get("/api/v1/openapi.json")  # a kept-alive connection
            assert response.status_code == 200
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                records = await _records(process.stderr, "node stopped")
                await process.wait()
            assert process.returncode == 0
            assert time.monotonic() - started < 10  # drained, not cut at the deadline
            events = [r.get("event") for r in records]
            assert events.index("http drained") < events.index("gateway drained")
            with pytest.raises(httpx.TransportError):
                await client.get("/api/v1/openapi.json")
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_requests_are_counted_by_route_and_status(api: Api) -> None:
    async with api.user("counted") as client:
        problem(await client.get("/conversations/none-such"), 404, "not_found")
    gateway = api.running.node.gateway.get()
    async with httpx.AsyncClient() as client:
        exposition = (await client.get(f"http://127.0.0.1:{gateway.port}/metrics")).text
    lines = [line for line in exposition.splitlines() if line.startswith("whispr_http_requests")]
    assert any(
        'route="/api/v1/conversations/{conversation_id}"' in line and 'status="404"' in line
        for line in lines
    ), lines


async def test_a_page_of_another_origin_may_call_the_api(api: Api) -> None:
    async with httpx.AsyncClient(base_url=f"{api.base}/api/v1") as client:
        preflight = await client.options(
            "/conversations",
            headers={
                "Origin": "http://localhost:5173",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
            },
        )
        assert preflight.status_code in (200, 204)
        assert preflight.headers["access-control-allow-origin"] in ("*", "http://localhost:5173")
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert "idempotency-key" in allowed
        token = api.running.token("cors")
        response = await client.get(
            "/conversations",
            headers={"Origin": "http://localhost:5173", "Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200
        assert "access-control-allow-origin" in response.headers
