"""The web client's files as the node serves them, and the vendored phoenix.js."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from supervisors import stop_tree
from tests.gateway.conftest import RunningNode, start_node
from whispr.http.routes.web import STATIC_DIR

VENDOR = STATIC_DIR / "vendor" / "phoenix"


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    running = await start_node({"WHISPR_SQLITE_PATH": str(tmp_path / "node.db")})
    try:
        yield running
    finally:
        await stop_tree(running.root, deadline=10)


def test_the_vendored_client_is_the_version_noted() -> None:
    noted = (VENDOR / "VERSION").read_text()
    digest = re.search(r"sha256 of phoenix.mjs as vendored: ([0-9a-f]{64})", noted)
    assert digest is not None
    assert hashlib.sha256((VENDOR / "phoenix.mjs").read_bytes()).hexdigest() == digest.group(1)
    assert "MIT" in (VENDOR / "LICENSE.md").read_text()


def test_the_page_loads_nothing_from_elsewhere() -> None:
    for path in STATIC_DIR.glob("*.*"):
        text = path.read_text()
        assert not re.search(r"(src|href)=\"(https?:)?//", text), path
        assert not re.search(r"from \"(https?:)?//", text), path


async def test_the_node_serves_the_page(node: RunningNode) -> None:
    base = f"http://127.0.0.1:{node.node.http.get().port}"
    async with httpx.AsyncClient(base_url=base) as http:
        home = await http.get("/")
        assert home.status_code in (301, 302, 307, 308)
        assert home.headers["location"] == "/app/"
        page = await http.get("/app/")
        assert page.status_code == 200
        assert '<script type="module" src="app.js">' in page.text
        for asset, kind in [
            ("app.js", "javascript"),
            ("app.css", "css"),
            ("vendor/phoenix/phoenix.mjs", "javascript"),
        ]:
            response = await http.get(f"/app/{asset}")
            assert response.status_code == 200, asset
            assert kind in response.headers["content-type"], asset
        config = (await http.get("/app/config.json")).json()
        assert config == {
            "websocket_port": node.node.gateway.get().port,
            "longpoll_path": "/socket/longpoll",
        }
        # Behind a proxy, the page opens its WebSocket on its own origin.
        proxied = await http.get("/app/config.json", headers={"x-forwarded-for": "10.0.0.1"})
        assert proxied.json()["websocket_port"] is None
        assert (await http.get("/app/../pyproject.toml")).status_code == 404
        assert (await http.get("/app/nothing.js")).status_code == 404
