"""The official phoenix.js client, unchanged, against a real node (see phoenix_gateway.mjs).

Needs Node.js and the npm packages ``phoenix`` and ``ws`` in ``$WHISPR_PHOENIX_JS``;
``make test`` installs them (``make phoenix-js``). Skipped when they are missing, except
under ``WHISPR_REQUIRE_SERVICES=1`` (CI), where that is a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from actors.conversation import Draft
from tests import services
from tests.gateway.conftest import RunningNode, unique


def _phoenix_js() -> str:
    directory = os.environ.get("WHISPR_PHOENIX_JS", "")
    missing = not (
        shutil.which("node")
        and directory
        and (Path(directory) / "node_modules" / "phoenix").is_dir()
        and (Path(directory) / "node_modules" / "ws").is_dir()
    )
    if missing:
        reason = "needs node and WHISPR_PHOENIX_JS=<dir with node_modules/phoenix and ws>"
        if services.services_required():
            pytest.fail(reason + " (required: WHISPR_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(reason)
    return directory


async def test_the_phoenix_js_client_works_unchanged(node: RunningNode) -> None:
    directory = _phoenix_js()
    ada, bob = unique("ada"), unique("bob")
    messaging = node.node.messaging.get()
    cid = (await messaging.create_group(ada, "js", [bob])).id
    for n in range(3):
        await messaging.send(bob, cid, Draft(client_id=f"before-{n}", content=str(n)))
    script = Path(__file__).with_name("phoenix_gateway.mjs")
    process = await asyncio.create_subprocess_exec(
        "node",
        str(script),
        node.url.removesuffix("/websocket"),
        node.token(ada, "js-ada"),
        node.token(bob, "js-bob"),
        cid,
        env={**os.environ, "WHISPR_PHOENIX_JS": directory},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 90)
    text = output.decode()
    assert process.returncode == 0, text
    assert text.rstrip().endswith("all ok"), text
