"""Group commit: batches form under load, results map back, failures reach every caller."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisors.batching import Batcher


class Recorder:
    def __init__(self, delay: float = 0.0, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay
        self.fail_on = fail_on
        self.concurrent = 0
        self.max_concurrent = 0

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            await asyncio.sleep(self.delay)
            self.batches.append(list(items))
            if self.fail_on is not None and self.fail_on in items:
                raise ConnectionError("database went away")
            return [item * 10 for item in items]
        finally:
            self.concurrent -= 1


async def test_a_lone_item_is_written_at_once() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder)
    assert await asyncio.wait_for(batcher.submit(7), timeout=2) == 70
    assert recorder.batches == [[7]]


async def test_items_submitted_together_share_a_batch_and_keep_their_results() -> None:
    recorder = Recorder(delay=0.01)
    batcher: Batcher[int, int] = Batcher(recorder, max_in_flight=1)
    results = await asyncio.gather(*(batcher.submit(n) for n in range(500)))
    assert results == [n * 10 for n in range(500)]
    assert sum(len(b) for b in recorder.batches) == 500
    assert len(recorder.batches) < 10  # grouped, not one round trip each


async def test_batches_respect_max_batch_and_max_in_flight() -> None:
    recorder = Recorder(delay=0.005)
    batcher: Batcher[int, int] = Batcher(recorder, max_batch=50, max_in_flight=3)
    await asyncio.gather(*(batcher.submit(n) for n in range(1000)))
    assert max(len(b) for b in recorder.batches) <= 50
    assert recorder.max_concurrent <= 3
    assert sorted(n for b in recorder.batches for n in b) == list(range(1000))


async def test_a_failed_batch_fails_every_item_in_it_and_only_those() -> None:
    recorder = Recorder(delay=0.01, fail_on=3)
    batcher: Batcher[int, int] = Batcher(recorder, max_batch=5, max_in_flight=1)
    futures = [batcher.submit(n) for n in range(10)]
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    failed_batch = next(b for b in recorder.batches if 3 in b)
    for n, outcome in enumerate(outcomes):
        if n in failed_batch:
            assert isinstance(outcome, ConnectionError)
        else:
            assert outcome == n * 10
    # The batcher keeps working after a failure.
    assert await batcher.submit(42) == 420


async def test_a_flush_returning_the_wrong_number_of_results_fails_the_batch() -> None:
    async def broken(items: Sequence[int]) -> list[int]:
        return []

    batcher: Batcher[int, int] = Batcher(broken)
    with pytest.raises(RuntimeError, match="results"):
        await batcher.submit(1)


async def test_close_waits_for_queued_items_and_refuses_new_ones() -> None:
    recorder = Recorder(delay=0.01)
    batcher: Batcher[int, int] = Batcher(recorder, max_batch=10, max_in_flight=1)
    futures = [batcher.submit(n) for n in range(35)]
    await batcher.close()
    assert all(f.done() for f in futures)
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(1)


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Batcher(Recorder(), max_batch=0)


@settings(max_examples=30, deadline=None)
@given(
    groups=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=10),
    max_batch=st.integers(min_value=1, max_value=30),
    max_in_flight=st.integers(min_value=1, max_value=4),
)
def test_every_item_is_written_exactly_once(
    groups: list[int], max_batch: int, max_in_flight: int
) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        batcher: Batcher[int, int] = Batcher(
            recorder, max_batch=max_batch, max_in_flight=max_in_flight
        )
        futures: list[asyncio.Future[int]] = []
        counter = 0
        for size in groups:
            for _ in range(size):
                futures.append(batcher.submit(counter))
                counter += 1
            await asyncio.sleep(0)
        results = await asyncio.gather(*futures)
        assert results == [n * 10 for n in range(counter)]
        written = [n for b in recorder.batches for n in b]
        assert sorted(written) == list(range(counter))
        assert len(written) == counter
        assert all(len(b) <= max_batch for b in recorder.batches)

    asyncio.run(scenario())


async def test_submit_many_keeps_its_items_together_and_in_order() -> None:
    recorder = Recorder(delay=0.005)
    batcher: Batcher[int, int] = Batcher(recorder, max_batch=10, max_in_flight=1)
    singles = [batcher.submit(n) for n in range(7)]
    chunk = batcher.submit_many([100, 101, 102, 103, 104])  # does not fit after 7 singles
    big = batcher.submit_many(list(range(200, 215)))  # more than max_batch: a batch alone
    assert await asyncio.gather(*singles) == [n * 10 for n in range(7)]
    assert await chunk == [1000, 1010, 1020, 1030, 1040]
    assert await big == [n * 10 for n in range(200, 215)]
    assert await batcher.submit_many([]) == []
    for items in ([100, 101, 102, 103, 104], list(range(200, 215))):
        holders = [b for b in recorder.batches if items[0] in b]
        assert len(holders) == 1
        start = holders[0].index(items[0])
        assert holders[0][start : start + len(items)] == items
    assert max(len(b) for b in recorder.batches if 200 not in b) <= 10


async def test_a_failed_batch_fails_a_chunk_as_a_whole() -> None:
    recorder = Recorder(fail_on=3)
    batcher: Batcher[int, int] = Batcher(recorder, max_in_flight=1)
    chunk = batcher.submit_many([1, 2, 3, 4])
    with pytest.raises(ConnectionError):
        await chunk
    assert await batcher.submit_many([5, 6]) == [50, 60]
