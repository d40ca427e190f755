"""``Batcher``: many callers' items handled in few calls.

When every item costs a round trip (a database write, a script call on
Redis) and callers wait for their own result, throughput comes from
handling several items per round trip, not from answering early. A
:class:`Batcher` gathers what is submitted while the previous batch is in
flight and hands it over in one call. Under light load a batch holds one
item and costs one round trip, as without batching; under heavy load
batches grow by themselves, with no timer adding latency.

A concurrency utility on asyncio, with no knowledge of what the items are:
the node uses it for group commit, catch-up reads, presence and rate limits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

__all__ = ["Batcher"]

logger = logging.getLogger("supervisors.batching")

T = TypeVar("T")
R = TypeVar("R")

FlushFunction = Callable[[Sequence[T]], Awaitable[Sequence[R]]]


class Batcher(Generic[T, R]):
    """Submit items one by one; they are flushed together, ``max_in_flight`` batches at a time.

    ``flush`` gets a batch and returns one result per item, in order. If it
    raises, every item of that batch gets the exception: nothing in a failed
    batch is acknowledged, and callers decide whether to retry. So a flush that
    can tell one item's failure from the whole batch's should say so in that
    item's result rather than raise (the stores' group commit does, see
    ``whispr/store/_isolate.py``): the Batcher knows nothing of the items.

    :meth:`submit_many` hands over several items that must be handled
    together: they go into one batch, in order, so that they succeed or fail
    as one and in the order the caller gave them.
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
        # Each entry: one item and its future, or (with ``many``) a list of
        # items and the future of their list of results.
        self._pending: list[_Entry[T, R]] = []
        self._queued = 0
        self._in_flight = 0
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.batches = 0
        self.items = 0

    @property
    def queued(self) -> int:
        """Items waiting for a batch."""
        return self._queued

    def submit(self, item: T) -> asyncio.Future[R]:
        """Queue ``item``; the future resolves with its result once its batch is written."""
        future: asyncio.Future[R] = self._new_future()
        self._queue(_Entry(item, future, False, 1))
        return future

    def submit_many(self, items: Sequence[T]) -> asyncio.Future[list[R]]:
        """Queue ``items`` to be written in one batch, in order; one future for all their results.

        More items than ``max_batch`` make a batch of their own.
        """
        future: asyncio.Future[list[R]] = self._new_future()
        if not items:
            future.set_result([])
            return future
        self._queue(_Entry(list(items), future, True, len(items)))
        return future

    async def close(self) -> None:
        """Refuse new items and wait for the queued ones to be written."""
        self._closed = True
        await self._idle.wait()

    def _new_future(self) -> asyncio.Future[Any]:
        if self._closed:
            msg = f"{self.name} is closed"
            raise RuntimeError(msg)
        return asyncio.get_running_loop().create_future()

    def _queue(self, entry: _Entry[T, R]) -> None:
        self._pending.append(entry)
        self._queued += entry.size
        if self._in_flight < self.max_in_flight:
            self._start_batch()

    def _take(self, batch: list[_Entry[T, R]], room: int) -> int:
        """Move whole entries from the queue into ``batch`` while they fit in ``room``."""
        pending = self._pending
        taken = 0
        while taken < len(pending):
            size = pending[taken].size
            if size > room and (batch or taken):
                break
            batch.append(pending[taken])
            room -= size
            taken += 1
            if room <= 0:
                break
        if taken:
            del pending[:taken]
        return room

    def _start_batch(self) -> None:
        batch: list[_Entry[T, R]] = []
        room = self._take(batch, self.max_batch)
        self._queued -= self.max_batch - room
        self._in_flight += 1
        self._idle.clear()
        # Started on the next loop turn, so that everything submitted during
        # this turn joins the batch.
        asyncio.get_running_loop().call_soon(self._launch, batch, room)

    def _launch(self, batch: list[_Entry[T, R]], room: int) -> None:
        # Items submitted since the batch was cut join it, up to the limit.
        if room > 0 and self._pending:
            left = self._take(batch, room)
            self._queued -= room - left
        task = asyncio.get_running_loop().create_task(self._write(batch))
        task.add_done_callback(_retrieve)

    async def _write(self, batch: list[_Entry[T, R]]) -> None:
        items: list[T] = []
        for entry in batch:
            if entry.many:
                items.extend(entry.item)
            else:
                items.append(entry.item)
        try:
            results = await self._flush(items)
            if len(results) != len(items):
                msg = f"{self.name}: flush returned {len(results)} results for {len(items)} items"
                raise RuntimeError(msg)
        except BaseException as exc:
            for entry in batch:
                if not entry.future.done():
                    entry.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            at = 0
            for entry in batch:
                future = entry.future
                if entry.many:
                    if not future.done():
                        future.set_result(list(results[at : at + entry.size]))
                elif not future.done():
                    future.set_result(results[at])
                at += entry.size
            self.batches += 1
            self.items += len(items)
        finally:
            self._in_flight -= 1
            if self._pending and self._in_flight < self.max_in_flight:
                self._start_batch()
            elif not self._pending and not self._in_flight:
                self._idle.set()


class _Entry(Generic[T, R]):
    """What one ``submit`` or ``submit_many`` queued."""

    __slots__ = ("future", "item", "many", "size")

    def __init__(self, item: Any, future: asyncio.Future[Any], many: bool, size: int) -> None:
        self.item = item
        self.future = future
        self.many = many
        self.size = size


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("batch task failed", exc_info=task.exception())
