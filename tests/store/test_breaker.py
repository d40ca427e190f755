"""The store's circuit breaker, on a stand-in store that fails as told, and in the service."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import pytest

from actors.errors import Reason, WhisprError
from actors.model import InsertResult, Message, Unsequenced
from actors.ports import Store
from tests.scrape import parse_samples, sample_values
from whispr.config import load_settings
from whispr.services import StoreHandles, StoreService
from whispr.slot import Slot
from whispr.store.breaker import BreakerStore
from whispr.telemetry import metrics_exposition

OPEN = "the message store is unavailable; try again"


class Flaky:
    """The few store methods these tests call: each raises ``failure`` when it is set."""

    def __init__(self) -> None:
        self.failure: BaseException | None = None
        self.calls = 0
        self.lifecycle: list[str] = []

    async def get_message(self, conversation_id: str, seq: int) -> Message | None:
        self.calls += 1
        if self.failure is not None:
            raise self.failure
        return None

    async def insert_messages(self, batch: Sequence[Message]) -> list[InsertResult]:
        self.calls += 1
        if self.failure is not None:
            raise self.failure
        return []

    async def open(self) -> None:
        self.lifecycle.append("open")

    async def close(self) -> None:
        self.lifecycle.append("close")

    async def migrate(self) -> None:
        self.lifecycle.append("migrate")

    async def ping(self) -> bool:
        self.lifecycle.append("ping")
        return True


def guarded(inner: Flaky, *, open_s: float = 30.0, name: str = "flaky") -> BreakerStore:
    return BreakerStore(cast(Store, inner), name, failures=5, open_s=open_s, trials=3)


def outage() -> WhisprError:
    return WhisprError(Reason.UNAVAILABLE, "the message store is unavailable; try again")


async def open_breaker(store: BreakerStore, inner: Flaky) -> None:
    inner.failure = outage()
    for _ in range(5):
        with pytest.raises(WhisprError) as raised:
            await store.get_message("c1", 1)
        assert raised.value.reason is Reason.UNAVAILABLE
    assert store.breaker.state == "open"


async def test_five_consecutive_outages_open_it_and_then_calls_fail_at_once() -> None:
    inner = Flaky()
    store = guarded(inner)
    inner.failure = outage()
    for _ in range(4):
        with pytest.raises(WhisprError) as raised:
            await store.get_message("c1", 1)
        assert raised.value is inner.failure  # passed through as it is
        assert store.breaker.state == "closed"
    with pytest.raises(WhisprError):
        await store.get_message("c1", 1)
    assert store.breaker.state == "open"
    assert inner.calls == 5

    inner.failure = None  # even a store that would answer is not asked while it is open
    for call in (store.get_message("c1", 1), store.insert_messages([])):
        with pytest.raises(WhisprError) as raised:
            await call
        assert raised.value.reason is Reason.UNAVAILABLE
        assert raised.value.message == OPEN
    assert inner.calls == 5


@pytest.mark.parametrize(
    "failure",
    [ConnectionRefusedError("refused"), ConnectionResetError("reset"), TimeoutError()],
    ids=["refused", "reset", "timeout"],
)
async def test_connection_errors_and_timeouts_count(failure: BaseException) -> None:
    inner = Flaky()
    store = guarded(inner)
    inner.failure = failure
    for _ in range(4):
        with pytest.raises(type(failure)):
            await store.get_message("c1", 1)
    with pytest.raises(WhisprError):
        await store.get_message("c1", 1)
    assert store.breaker.state == "open"


@pytest.mark.parametrize(
    "failure",
    [
        WhisprError(Reason.INVALID, "bad seq"),
        WhisprError(Reason.NOT_FOUND, "no conversation"),
        WhisprError(Reason.NOT_MEMBER, "not a member"),
        WhisprError(Reason.CONFLICT, "taken"),
        WhisprError(Reason.FORBIDDEN, "no"),
        ValueError("a bug, not an outage"),
    ],
    ids=lambda exc: getattr(getattr(exc, "reason", None), "value", type(exc).__name__),
)
async def test_refusals_pass_through_and_never_open_it(failure: BaseException) -> None:
    inner = Flaky()
    store = guarded(inner)
    inner.failure = failure
    for _ in range(20):
        with pytest.raises(type(failure)) as raised:
            await store.get_message("c1", 1)
        assert raised.value is failure
    assert store.breaker.state == "closed"
    assert inner.calls == 20


async def test_after_the_open_period_three_good_trials_close_it() -> None:
    inner = Flaky()
    store = guarded(inner, open_s=0.2)
    await open_breaker(store, inner)
    inner.failure = None
    await asyncio.sleep(0.25)
    assert await store.get_message("c1", 1) is None  # a trial, reaching the store
    assert store.breaker.state == "half-open"
    assert await store.get_message("c1", 1) is None
    assert await store.get_message("c1", 1) is None
    assert store.breaker.state == "closed"
    assert inner.calls == 8


async def test_a_failed_trial_opens_it_again_for_another_period() -> None:
    inner = Flaky()
    store = guarded(inner, open_s=0.2)
    await open_breaker(store, inner)
    await asyncio.sleep(0.25)
    with pytest.raises(WhisprError) as raised:
        await store.get_message("c1", 1)  # the trial reaches the store and fails
    assert raised.value.reason is Reason.UNAVAILABLE
    assert store.breaker.state == "open"
    assert inner.calls == 6
    with pytest.raises(WhisprError):
        await store.get_message("c1", 1)
    assert inner.calls == 6


async def test_life_and_readiness_calls_are_never_blocked() -> None:
    inner = Flaky()
    store = guarded(inner)
    await open_breaker(store, inner)
    await store.open()
    await store.migrate()
    assert await store.ping() is True
    await store.close()
    assert inner.lifecycle == ["open", "migrate", "ping", "close"]
    assert store.breaker.state == "open"


async def test_state_changes_are_counted_by_store_and_state() -> None:
    inner = Flaky()
    store = guarded(inner, name="counted")
    await open_breaker(store, inner)
    text = metrics_exposition().decode()
    lines = [line for line in text.splitlines() if line.startswith("whispr_store_breaker_changes")]
    assert any('store="counted"' in line and 'state="open"' in line for line in lines), lines


async def test_the_store_service_puts_group_commit_behind_the_breaker(tmp_path: Path) -> None:
    settings = load_settings(
        env={
            "WHISPR_SQLITE_PATH": str(tmp_path / "whispr.db"),
            "WHISPR_STORE_BREAKER_FAILURES": "2",
            "WHISPR_STORE_BREAKER_OPEN_S": "60",
        }
    )
    slot: Slot[StoreHandles] = Slot("store")
    service = StoreService(settings, slot)
    await service.on_start()
    try:
        handles = slot.get()
        assert isinstance(handles.store, BreakerStore)
        message = Unsequenced(
            conversation_id="c1",
            id="m1",
            client_id="k1",
            sender_id="ada",
            kind="text",
            content="hi",
            created_at=time.time(),
            trusted_sender=True,
        )
        # The database goes away under the service: its store answers unavailable.
        await handles.store.store.close()
        for _ in range(2):
            with pytest.raises(WhisprError) as raised:
                await handles.commit.submit(message)
            assert raised.value.reason is Reason.UNAVAILABLE
        assert handles.store.breaker.state == "open"
        await handles.store.store.open()  # back, but the breaker is open: not asked yet
        with pytest.raises(WhisprError) as raised:
            await handles.commit.submit(message)
        assert raised.value.message == OPEN
    finally:
        await service.on_stop()


def _store_calls(operation: str, outcome: str) -> float:
    samples = parse_samples(metrics_exposition().decode())
    return sum(
        sample_values(
            samples, "whispr_store_call_seconds_count", operation=operation, outcome=outcome
        )
    )


async def test_each_call_is_timed_by_operation_and_outcome() -> None:
    inner = Flaky()
    store = guarded(inner, name="timed")
    outcomes = ("ok", "error", "unavailable")
    before = {outcome: _store_calls("get_message", outcome) for outcome in outcomes}

    await store.get_message("c1", 1)
    inner.failure = WhisprError(Reason.NOT_FOUND, "no conversation")  # the store said no
    with pytest.raises(WhisprError):
        await store.get_message("c1", 1)
    await open_breaker(store, inner)  # five outages, the fifth opening it
    with pytest.raises(WhisprError):
        await store.get_message("c1", 1)  # refused by the open breaker: no call made

    after = {outcome: _store_calls("get_message", outcome) for outcome in outcomes}
    assert {o: after[o] - before[o] for o in outcomes} == {"ok": 1, "error": 1, "unavailable": 6}


async def test_the_breaker_state_is_a_gauge_worst_first() -> None:
    inner = Flaky()
    store = guarded(inner, name="gauged")
    assert store.breaker.state_code == 0
    await open_breaker(store, inner)
    assert store.breaker.state_code == 2
    samples = parse_samples(metrics_exposition().decode())
    # Every live store of the process is read; the worst shows, and this one is open.
    assert sample_values(samples, "whispr_store_breaker_state") == [2.0]
