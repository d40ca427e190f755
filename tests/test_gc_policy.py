"""The node process's garbage-collection policy."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from whispr import gc_policy
from whispr.bench.nodes import free_port


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_apply_freezes_what_is_alive_and_sets_the_thresholds(restore_gc: None) -> None:
    gc.unfreeze()
    alive_before = object.__new__(type("Alive", (), {}))
    gc_policy.apply((12_345, 11, 101))
    assert gc.get_threshold() == (12_345, 11, 101)
    assert gc.get_freeze_count() > 0
    assert alive_before not in gc.get_objects()  # frozen: no collection examines it
    assert gc_policy.DEFAULT_THRESHOLDS == (50_000, 20, 100)


async def test_a_node_process_applies_the_configured_thresholds(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "WHISPR_PORT": str(free_port()),
        "WHISPR_GRPC_PORT": str(free_port()),
        "WHISPR_HTTP_PORT": str(free_port()),
        "WHISPR_SQLITE_PATH": str(tmp_path / "node.db"),
        "WHISPR_DATABASE_URL": "",
        "WHISPR_REDIS_URL": "",
        "WHISPR_LOG_FORMAT": "json",
        "WHISPR_LOG_LEVEL": "info",
        "WHISPR_GC_THRESHOLDS": "4321,9,99",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "whispr.cli", "serve", env=env, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(60):
            while True:
                line = await process.stderr.readline()
                assert line, "the node exited before it was up"
                record = json.loads(line) if line.startswith(b"{") else {}
                if record.get("event") == "node up":
                    break
        assert record["gc_thresholds"] == [4321, 9, 99]
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await process.communicate()
