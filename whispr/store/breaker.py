"""``BreakerStore``: the store behind the specified circuit breaker.

During a database outage every store call would otherwise wait for its own
connect or command timeout (seconds), and the callers (sends, pages, joins) pile
up behind them. Behind the breaker, 5 consecutive outage-type failures open it;
while it is open (30 s) every call fails at once with ``unavailable``, without
touching the database; then calls go through as trials, 3 successes close it and
one failure opens it again (``WHISPR_STORE_BREAKER_*``). The breaker is the
siblings' one (:class:`whispr.siblings.breaker.Breaker`) with the store's rule.

Only outage-type failures count: ``WhisprError(unavailable)`` (the stores' word
for a database that cannot be reached, is too slow or failed), and a connection
error or timeout that escaped as it is. A refusal (``invalid``, ``not_found``,
``not_member``, ``conflict``...) is the store answering: it passes through as it
is and never counts as a failure.

``open``, ``close``, ``migrate`` and ``ping`` bypass the breaker: a node must be
able to start and stop whatever its state, and readiness asks the database
itself (a ``False`` from ``ping`` is not an exception, so it could not count as a
failure, and would count as a success of a trial).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ParamSpec, TypeVar

import structlog
from opentelemetry.metrics import Counter

from actors.errors import Reason, WhisprError
from actors.model import (
    Conversation,
    ConversationSummary,
    DeliveryCursor,
    Draft,
    InsertResult,
    Member,
    Message,
)
from actors.ports import UNCHANGED, ScheduleStore, Store
from actors.scheduling import Expiry, Schedule
from actors.search import MessageFilters, SearchHit, SearchQuery
from whispr.siblings.breaker import Breaker, BreakerOpen
from whispr.store.metrics import Outcome, StoreCallLatency, store_breaker_state
from whispr.telemetry import get_meter

__all__ = ["BreakerSchedules", "BreakerStore", "is_outage"]

log = structlog.get_logger("whispr.store")

P = ParamSpec("P")
T = TypeVar("T")

OPEN_MESSAGE = "the message store is unavailable; try again"


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` counts against the store (see the module's docstring)."""
    if isinstance(exc, WhisprError):
        return exc.reason is Reason.UNAVAILABLE
    return isinstance(exc, ConnectionError | TimeoutError)


@functools.cache
def breaker_changes() -> Counter:
    """The process's counter of the store breaker's state changes (created on first use)."""
    return get_meter("whispr.store").create_counter(
        "whispr_store_breaker_changes",
        description="the store's circuit breaker state changes, by store and new state",
    )


class BreakerStore:
    """The :class:`actors.ports.Store` ``store``, each data call under one breaker.

    ``name`` labels the breaker in the metric and logs (``postgresql``, ``sqlite``).
    """

    def __init__(
        self,
        store: Store,
        name: str,
        *,
        failures: int = 5,
        open_s: float = 30.0,
        trials: int = 3,
    ) -> None:
        self.store = store
        self.breaker = Breaker(
            name,
            is_failure=is_outage,
            changes=breaker_changes(),
            label="store",
            failures=failures,
            open_s=open_s,
            trials=trials,
            logger=log,
        )
        self._latency = StoreCallLatency()
        store_breaker_state().watch(self)

    async def _call(
        self, method: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        started = time.perf_counter()
        outcome: Outcome = "ok"
        try:
            return await self.breaker.call(lambda: method(*args, **kwargs))
        except BreakerOpen as exc:
            outcome = "unavailable"
            raise WhisprError(Reason.UNAVAILABLE, OPEN_MESSAGE) from exc
        except BaseException as exc:
            outcome = "unavailable" if is_outage(exc) else "error"
            raise
        finally:
            self._latency.record(method.__name__, outcome, time.perf_counter() - started)

    # -- life and readiness: never behind the breaker --------------------------------

    async def open(self) -> None:
        await self.store.open()

    async def close(self) -> None:
        await self.store.close()

    async def ping(self) -> bool:
        return await self.store.ping()

    async def migrate(self) -> None:
        await self.store.migrate()

    # -- conversations ---------------------------------------------------------------

    async def create_conversation(
        self, conversation: Conversation, members: Sequence[Member]
    ) -> None:
        await self._call(self.store.create_conversation, conversation, members)

    async def get_or_create_direct(self, user_a: str, user_b: str, now: float) -> Conversation:
        return await self._call(self.store.get_or_create_direct, user_a, user_b, now)

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        return await self._call(self.store.get_conversation, conversation_id)

    async def update_conversation(
        self,
        conversation_id: str,
        *,
        title: str | None = UNCHANGED,
        avatar: str | None = UNCHANGED,
        settings: dict[str, Any] = UNCHANGED,
        description: str | None = UNCHANGED,
    ) -> Conversation:
        return await self._call(
            self.store.update_conversation,
            conversation_id,
            title=title,
            avatar=avatar,
            settings=settings,
            description=description,
        )

    async def list_members(self, conversation_id: str) -> list[Member]:
        return await self._call(self.store.list_members, conversation_id)

    async def versioned_members(self, conversation_id: str) -> tuple[list[Member], int]:
        return await self._call(self.store.versioned_members, conversation_id)

    async def add_members(self, members: Sequence[Member]) -> None:
        await self._call(self.store.add_members, members)

    async def remove_member(self, conversation_id: str, user_id: str) -> None:
        await self._call(self.store.remove_member, conversation_id, user_id)

    async def update_member(
        self,
        conversation_id: str,
        user_id: str,
        *,
        role: str = UNCHANGED,
        muted_until: float | None = UNCHANGED,
        notifications: str = UNCHANGED,
        archived: bool = UNCHANGED,
        pin_order: int | None = UNCHANGED,
    ) -> Member:
        return await self._call(
            self.store.update_member,
            conversation_id,
            user_id,
            role=role,
            muted_until=muted_until,
            notifications=notifications,
            archived=archived,
            pin_order=pin_order,
        )

    async def list_user_conversations(
        self,
        user_id: str,
        limit: int,
        before: float | None = None,
        *,
        before_id: str | None = None,
    ) -> list[ConversationSummary]:
        return await self._call(
            self.store.list_user_conversations, user_id, limit, before, before_id=before_id
        )

    # -- messages --------------------------------------------------------------------

    async def insert_messages(self, batch: Sequence[Message]) -> list[InsertResult]:
        return await self._call(self.store.insert_messages, batch)

    async def get_message(self, conversation_id: str, seq: int) -> Message | None:
        return await self._call(self.store.get_message, conversation_id, seq)

    async def find_by_client_id(
        self, conversation_id: str, sender_id: str, client_id: str
    ) -> Message | None:
        return await self._call(self.store.find_by_client_id, conversation_id, sender_id, client_id)

    async def last_seq(self, conversation_id: str) -> int:
        return await self._call(self.store.last_seq, conversation_id)

    async def memberships(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        return await self._call(self.store.memberships, pairs)

    async def last_seqs(self, conversation_ids: Sequence[str]) -> dict[str, int]:
        return await self._call(self.store.last_seqs, conversation_ids)

    async def page_messages(
        self,
        conversation_id: str,
        *,
        before_seq: int | None = None,
        after_seq: int | None = None,
        limit: int = 50,
        viewer_id: str | None = None,
        filters: MessageFilters | None = None,
    ) -> list[Message]:
        return await self._call(
            self.store.page_messages,
            conversation_id,
            before_seq=before_seq,
            after_seq=after_seq,
            limit=limit,
            viewer_id=viewer_id,
            filters=filters,
        )

    async def search_messages(self, query: SearchQuery) -> list[SearchHit]:
        return await self._call(self.store.search_messages, query)

    async def edit_message(
        self, conversation_id: str, seq: int, content: str, edited_at: float
    ) -> Message:
        return await self._call(self.store.edit_message, conversation_id, seq, content, edited_at)

    async def delete_message(self, conversation_id: str, seq: int) -> Message:
        return await self._call(self.store.delete_message, conversation_id, seq)

    async def hide_message(self, conversation_id: str, seq: int, user_id: str) -> None:
        await self._call(self.store.hide_message, conversation_id, seq, user_id)

    async def expire_message(self, conversation_id: str, seq: int) -> bool:
        return await self._call(self.store.expire_message, conversation_id, seq)

    async def add_reaction(
        self, conversation_id: str, seq: int, user_id: str, emoji: str
    ) -> Message:
        return await self._call(self.store.add_reaction, conversation_id, seq, user_id, emoji)

    async def remove_reaction(
        self, conversation_id: str, seq: int, user_id: str, emoji: str
    ) -> Message:
        return await self._call(self.store.remove_reaction, conversation_id, seq, user_id, emoji)

    async def set_pinned(self, conversation_id: str, seq: int, pinned: bool) -> Message:
        return await self._call(self.store.set_pinned, conversation_id, seq, pinned)

    async def list_pinned(self, conversation_id: str) -> list[Message]:
        return await self._call(self.store.list_pinned, conversation_id)

    async def list_thread(
        self,
        conversation_id: str,
        root_seq: int,
        *,
        after_seq: int = 0,
        limit: int = 50,
        viewer_id: str | None = None,
    ) -> list[Message]:
        return await self._call(
            self.store.list_thread,
            conversation_id,
            root_seq,
            after_seq=after_seq,
            limit=limit,
            viewer_id=viewer_id,
        )

    # -- cursors ---------------------------------------------------------------------

    async def mark_read(self, conversation_id: str, user_id: str, seq: int) -> int:
        return await self._call(self.store.mark_read, conversation_id, user_id, seq)

    async def mark_delivered(
        self, conversation_id: str, user_id: str, device_id: str, seq: int
    ) -> int:
        return await self._call(self.store.mark_delivered, conversation_id, user_id, device_id, seq)

    async def get_read_cursors(self, conversation_id: str) -> dict[str, int]:
        return await self._call(self.store.get_read_cursors, conversation_id)

    async def get_delivery_cursors(
        self, conversation_id: str, user_id: str | None = None
    ) -> list[DeliveryCursor]:
        return await self._call(self.store.get_delivery_cursors, conversation_id, user_id)

    async def unread_counts(self, user_id: str) -> dict[str, int]:
        return await self._call(self.store.unread_counts, user_id)

    async def mention_counts(self, user_id: str) -> dict[str, int]:
        return await self._call(self.store.mention_counts, user_id)


class BreakerSchedules:
    """The :class:`actors.ports.ScheduleStore` ``store``, each call under ``guard``'s breaker
    (the same database: one breaker for all of it)."""

    def __init__(self, store: ScheduleStore, guard: BreakerStore) -> None:
        self.store = store
        self._call = guard._call

    async def add_schedule(self, schedule: Schedule) -> Schedule:
        return await self._call(self.store.add_schedule, schedule)

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        return await self._call(self.store.get_schedule, schedule_id)

    async def list_schedules(self, conversation_id: str, sender_id: str) -> list[Schedule]:
        return await self._call(self.store.list_schedules, conversation_id, sender_id)

    async def update_schedule(
        self, schedule_id: str, *, draft: Draft | None = None, send_at: float | None = None
    ) -> Schedule:
        return await self._call(
            self.store.update_schedule, schedule_id, draft=draft, send_at=send_at
        )

    async def cancel_schedule(self, schedule_id: str) -> None:
        await self._call(self.store.cancel_schedule, schedule_id)

    async def claim_schedules(self, now: float, lease_s: float, limit: int) -> list[Schedule]:
        return await self._call(self.store.claim_schedules, now, lease_s, limit)

    async def finish_schedule(self, schedule_id: str) -> None:
        await self._call(self.store.finish_schedule, schedule_id)

    async def claim_expiries(self, now: float, lease_s: float, limit: int) -> list[Expiry]:
        return await self._call(self.store.claim_expiries, now, lease_s, limit)

    async def finish_expiry(self, conversation_id: str, seq: int) -> None:
        await self._call(self.store.finish_expiry, conversation_id, seq)

    async def next_due(self) -> float | None:
        return await self._call(self.store.next_due)


def _conforms_schedules(store: BreakerSchedules) -> ScheduleStore:
    return store  # mypy checks here that BreakerSchedules implements the protocol


def _conforms(store: BreakerStore) -> Store:
    return store  # mypy checks here that BreakerStore implements the Store protocol
