"""Leave no actor of one test running into the next."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pykka
import pytest

from supervisors import Ref


@pytest.fixture(autouse=True)
async def _kill_leftover_actors() -> AsyncIterator[None]:
    yield
    loop = asyncio.get_running_loop()
    for ref in pykka.ActorRegistry.get_all():
        if isinstance(ref, Ref) and ref._binding.loop is loop:
            ref.kill("test over")
    await asyncio.sleep(0)
