"""Group commit: many callers' writes in few round trips.

A send is acknowledged only once it is durable, so throughput cannot come
from acknowledging early; it comes from batching. Every conversation actor
submits its insert and awaits the result; a :class:`Batcher` gathers what is
submitted while the previous batch is in flight and writes it in one call.
Under light load a batch holds one item and costs one round trip, as without
batching; under heavy load batches grow by themselves, with no timer adding
latency.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Batcher"]

logger = logging.getLogger("whispr.batching")

T = TypeVar("T")
R = TypeVar("R")

FlushFunction = Callable[[Sequence[T]], Awaitable[Sequence[R]]]


class Batcher(Generic[T, R]):
    """Submit items one by one; they are flushed together, ``max_in_flight`` batches at a time.

    ``flush`` gets a batch and returns one result per item, in order. If it
    raises, every item of that batch gets the exception: nothing in a failed
    batch is acknowledged, and callers may retry (sends are idempotent).
    """

    def __init__(
        self,
        flush: FlushFunction[T, R],
        *,
        max_batch: int = 1000,
        max_in_flight: int = 2,
        name: str = "batcher",
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            msg = "max_batch and max_in_flight must be at least 1"
            raise ValueError(msg)
        self._flush = flush
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self.name = name
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._in_flight = 0
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.batches = 0
        self.items = 0

    @property
    def queued(self) -> int:
        """Items waiting for a batch."""
        return len(self._pending)

    def submit(self, item: T) -> asyncio.Future[R]:
        """Queue ``item``; the future resolves with its result once its batch is written."""
        if self._closed:
            msg = f"{self.name} is closed"
            raise RuntimeError(msg)
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._in_flight < self.max_in_flight:
            self._start_batch()
        return future

    async def close(self) -> None:
        """Refuse new items and wait for the queued ones to be written."""
        self._closed = True
        await self._idle.wait()

    def _start_batch(self) -> None:
        batch = self._pending[: self.max_batch]
        del self._pending[: self.max_batch]
        self._in_flight += 1
        self._idle.clear()
        # Started on the next loop turn, so that everything submitted during
        # this turn joins the batch.
        asyncio.get_running_loop().call_soon(self._launch, batch)

    def _launch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        # Items submitted since the batch was cut join it, up to the limit.
        room = self.max_batch - len(batch)
        if room > 0 and self._pending:
            batch.extend(self._pending[:room])
            del self._pending[:room]
        task = asyncio.get_running_loop().create_task(self._write(batch))
        task.add_done_callback(_retrieve)

    async def _write(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._flush([item for item, _ in batch])
            if len(results) != len(batch):
                msg = f"{self.name}: flush returned {len(results)} results for {len(batch)} items"
                raise RuntimeError(msg)
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
            self.batches += 1
            self.items += len(batch)
        finally:
            self._in_flight -= 1
            if self._pending and self._in_flight < self.max_in_flight:
                self._start_batch()
            elif not self._pending and not self._in_flight:
                self._idle.set()


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("batch task failed", exc_info=task.exception())
