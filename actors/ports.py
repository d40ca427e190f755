"""The ``Store`` port: what the actors need from persistence.

Implemented by ``whispr.store`` on PostgreSQL (production) and SQLite (the
embedded default), with one contract test suite for both. The store keeps
data and its integrity (unique keys, monotonic cursors); the rules of who may
do what live in the actors.

Errors: an unknown conversation or message raises ``WhisprError(not_found)``;
a database that cannot be reached or answers too slowly raises
``WhisprError(unavailable)``. No driver exception escapes.

Bad input at this boundary (a seq below 1, an unknown message kind, an empty
id, a negative cursor, a direct conversation of a user with themselves)
raises ``WhisprError(invalid)`` before anything is written: the actors check
the rules first, so reaching the store with such a value is a bug upstream,
and the store refuses to turn it into stored data. Likewise a tombstoned
message cannot be edited, reacted to or pinned (``invalid``), even by a
writer whose cached copy is stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from actors.model import (
    Conversation,
    ConversationSummary,
    DeliveryCursor,
    Draft,
    InsertResult,
    Member,
    Message,
)
from actors.scheduling import Expiry, Schedule
from actors.search import MessageFilters, SearchHit, SearchQuery

__all__ = ["UNCHANGED", "ScheduleStore", "Store"]


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Any = _Unchanged()
"""Default of optional update arguments: leave the field as it is."""


class Store(Protocol):
    """Durable conversations, members, messages and cursors."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """Whether the database answers now (readiness)."""
        ...

    async def migrate(self) -> None:
        """Apply pending schema migrations; safe to run from several nodes at once."""
        ...

    # -- conversations -------------------------------------------------------------

    async def create_conversation(
        self, conversation: Conversation, members: Sequence[Member]
    ) -> None: ...

    async def get_or_create_direct(self, user_a: str, user_b: str, now: float) -> Conversation:
        """The one direct conversation of an unordered pair, created if needed, race-safe."""
        ...

    async def get_conversation(self, conversation_id: str) -> Conversation | None: ...

    async def update_conversation(
        self,
        conversation_id: str,
        *,
        title: str | None = UNCHANGED,
        avatar: str | None = UNCHANGED,
        settings: dict[str, Any] = UNCHANGED,
        description: str | None = UNCHANGED,
    ) -> Conversation: ...

    async def list_members(self, conversation_id: str) -> list[Member]: ...

    async def versioned_members(self, conversation_id: str) -> tuple[list[Member], int]:
        """The members and the membership version they are at, read in one snapshot.

        The version moves with every member added or removed, in the same transaction,
        whoever makes the change (``Unsequenced.member_version``).
        """
        ...

    async def add_members(self, members: Sequence[Member]) -> None:
        """Add members; users already members are left as they are."""
        ...

    async def remove_member(self, conversation_id: str, user_id: str) -> None: ...

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
    ) -> Member: ...

    async def list_user_conversations(
        self,
        user_id: str,
        limit: int,
        before: float | None = None,
        *,
        before_id: str | None = None,
    ) -> list[ConversationSummary]:
        """The user's conversations by last activity, newest first, with unread counts.

        Activity is ``last_message_at``, or ``created_at`` before any
        message; ties are broken by conversation id, descending. The next
        page starts after the last row of this one: pass its activity as
        ``before`` and its id as ``before_id``. With ``before`` alone, every
        conversation at exactly that instant is skipped, which is only right
        when the caller knows there is no tie.
        """
        ...

    # -- messages ------------------------------------------------------------------------

    async def insert_messages(self, batch: Sequence[Message]) -> list[InsertResult]:
        """Group commit: write a batch (of many conversations) in one round trip.

        One result per message, in order. Unique keys on
        ``(conversation_id, seq)`` and ``(conversation_id, sender_id,
        client_id)`` decide: a stored client id gives ``duplicate`` with the
        original message, a taken seq gives ``seq_conflict``.
        """
        ...

    async def get_message(self, conversation_id: str, seq: int) -> Message | None: ...

    async def find_by_client_id(
        self, conversation_id: str, sender_id: str, client_id: str
    ) -> Message | None:
        """The message a sender stored under a client id, if any (idempotent sends)."""
        ...

    async def last_seq(self, conversation_id: str) -> int: ...

    async def memberships(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which ``(conversation_id, user_id)`` pairs are memberships now, in one read.

        For the streams' check of their followers (``actors/stream.py``): a member removed
        while the event saying so was lost stops following within the check's interval.
        """
        ...

    async def last_seqs(self, conversation_ids: Sequence[str]) -> dict[str, int]:
        """The last seq of each of these conversations that exists, in one read.

        For the streams' position check (``actors/stream.py``): one cheap read per node and
        interval however many conversations it follows.
        """
        ...

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
        """Ascending by seq: the newest ``limit`` before ``before_seq``, or the oldest after
        ``after_seq``; messages the viewer hid are left out, and with ``filters`` those
        they do not match (``actors/search.py``)."""
        ...

    async def search_messages(self, query: SearchQuery) -> list[SearchHit]:
        """The best ``query.limit`` hits after ``query.after`` among the messages the viewer
        can see (``actors/search.py``): best rank first, then conversation id, then seq
        descending. Tombstones, hidden and end-to-end encrypted messages are never hits."""
        ...

    async def edit_message(
        self, conversation_id: str, seq: int, content: str, edited_at: float
    ) -> Message: ...

    async def delete_message(self, conversation_id: str, seq: int) -> Message:
        """Tombstone for everyone: content and attachments emptied, ``deleted`` set."""
        ...

    async def hide_message(self, conversation_id: str, seq: int, user_id: str) -> None:
        """Delete for oneself."""
        ...

    async def expire_message(self, conversation_id: str, seq: int) -> bool:
        """A disappearing message's end, for good and in one transaction: its content,
        attachments' references, metadata, reactions and hidden marks go; a stub
        keeps its seq and client id (a retried send stays a duplicate) and no read returns
        it again (pages, threads, pins, ``get_message``, conversation lists). True if it
        expired now; False if it had already (idempotent) or never existed."""
        ...

    async def add_reaction(
        self, conversation_id: str, seq: int, user_id: str, emoji: str
    ) -> Message: ...

    async def remove_reaction(
        self, conversation_id: str, seq: int, user_id: str, emoji: str
    ) -> Message: ...

    async def set_pinned(self, conversation_id: str, seq: int, pinned: bool) -> Message: ...

    async def list_pinned(self, conversation_id: str) -> list[Message]: ...

    async def list_thread(
        self,
        conversation_id: str,
        root_seq: int,
        *,
        after_seq: int = 0,
        limit: int = 50,
        viewer_id: str | None = None,
    ) -> list[Message]:
        """The replies to message ``root_seq`` (``reply_to``), ascending, the first ``limit``
        after ``after_seq``; messages the viewer hid are left out."""
        ...

    # -- cursors -------------------------------------------------------------------------

    async def mark_read(self, conversation_id: str, user_id: str, seq: int) -> int:
        """Move the user's read cursor forward (never back); returns the cursor."""
        ...

    async def mark_delivered(
        self, conversation_id: str, user_id: str, device_id: str, seq: int
    ) -> int:
        """Move one device's delivered cursor forward (never back); returns it."""
        ...

    async def get_read_cursors(self, conversation_id: str) -> dict[str, int]: ...

    async def get_delivery_cursors(
        self, conversation_id: str, user_id: str | None = None
    ) -> list[DeliveryCursor]:
        """Every device's delivered cursor in a conversation (or one user's devices)."""
        ...

    async def unread_counts(self, user_id: str) -> dict[str, int]: ...

    async def mention_counts(self, user_id: str) -> dict[str, int]:
        """Per conversation of the user, the unread messages (as ``unread_counts`` counts them)
        whose ``metadata.mentions`` names the user; conversations without one left out."""
        ...


class ScheduleStore(Protocol):
    """Durable timers: scheduled messages and messages' expiries (actors/scheduling.py).

    Each is a queue ordered by its due time. Schedulers read only its head
    (:meth:`next_due`) and claim due entries for a lease (:meth:`claim_schedules`,
    :meth:`claim_expiries`): a claimed entry's due time moves to the lease's end, so an entry
    whose claimer died is claimed again then, and two schedulers never claim one entry at
    the same moment. What a claim leads to is idempotent (a send by its client id, an
    expiry), so a second claim after a lost one repeats nothing.
    """

    async def add_schedule(self, schedule: Schedule) -> Schedule:
        """Keep a schedule; idempotent by the draft's client id (the stored one comes back)."""
        ...

    async def get_schedule(self, schedule_id: str) -> Schedule | None: ...

    async def list_schedules(self, conversation_id: str, sender_id: str) -> list[Schedule]:
        """One author's pending schedules in one conversation, by ``send_at``."""
        ...

    async def update_schedule(
        self, schedule_id: str, *, draft: Draft | None = None, send_at: float | None = None
    ) -> Schedule:
        """Change a schedule not yet claimed: ``not_found`` if gone, ``conflict`` if claimed."""
        ...

    async def cancel_schedule(self, schedule_id: str) -> None:
        """Drop a schedule not yet claimed: ``not_found`` if gone, ``conflict`` if claimed."""
        ...

    async def claim_schedules(self, now: float, lease_s: float, limit: int) -> list[Schedule]:
        """Up to ``limit`` schedules due at ``now``, by due time, each claimed for ``lease_s``."""
        ...

    async def finish_schedule(self, schedule_id: str) -> None:
        """A claimed schedule was sent (or refused for good): it is dropped."""
        ...

    async def claim_expiries(self, now: float, lease_s: float, limit: int) -> list[Expiry]:
        """Up to ``limit`` messages due to expire at ``now``, each claimed for ``lease_s``."""
        ...

    async def finish_expiry(self, conversation_id: str, seq: int) -> None:
        """A claimed expiry was carried out and announced: it is dropped."""
        ...

    async def next_due(self) -> float | None:
        """The earliest due time of either queue (claimed entries at their lease's end), or
        None when both are empty: two reads of an index's first entry."""
        ...
