"""What a member's client needs of a conversation on (re)join, and the reads around it.

A client that rejoins shows "seen by" and "delivered to" under messages, the pinned bar, and
its own settings of the conversation; a thread view lists the replies to one message; the
conversation list shows unread and mention counts. These are reads of the store, with no
ordering against sends, so they go straight to it (as ``Messaging``'s reads do), one member
check each, taken from the same read of the member list where the answer needs that list:

- :meth:`MemberStateReads.state`: receipts, pins and the member's settings in three reads
  (the member list, the delivered cursors when the group is small, the pins).
- :meth:`MemberStateReads.receipts`: each member's read cursor, and the furthest of their
  devices' delivered cursors for groups of at most :data:`RECEIPTS_DELIVERED_MAX_MEMBERS`
  members (or for one member, named, in any group): a member's devices are many in a large
  group and a "delivered" mark is a small-group feature in every chat client.
- :meth:`MemberStateReads.thread`: replies to a message, paged after a seq.
- :meth:`MemberStateReads.unread`: unread and mention counts of all the user's conversations.

Membership is checked against the member list read from the store, the source of truth, so a
member removed on another node a moment ago is refused here at once.
"""

from __future__ import annotations

from typing import Final

import msgspec

from actors import rules
from actors.errors import Reason, WhisprError
from actors.member_settings import MemberSettings
from actors.model import Member, Message
from actors.ports import Store

__all__ = [
    "RECEIPTS_DELIVERED_MAX_MEMBERS",
    "JoinState",
    "MemberStateReads",
    "Receipt",
    "UnreadState",
]

RECEIPTS_DELIVERED_MAX_MEMBERS: Final = 50
"""Receipts carry delivered cursors for conversations of at most this many members."""


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    """How far one member has read, and has received on any of their devices."""

    user_id: str
    read_seq: int
    #: The furthest delivered cursor of the member's devices (0: none yet); None when the
    #: conversation is over :data:`RECEIPTS_DELIVERED_MAX_MEMBERS` members.
    delivered_seq: int | None


class JoinState(msgspec.Struct, frozen=True, kw_only=True):
    """A member's state of one conversation, as a (re)joining client needs it."""

    receipts: list[Receipt]
    pins: list[Message]
    settings: MemberSettings


class UnreadState(msgspec.Struct, frozen=True, kw_only=True):
    """Per conversation of a user: unread messages, and those of them mentioning the user."""

    unread: dict[str, int]
    #: Only conversations with an unread mention (actors/mentions.py).
    mentions: dict[str, int]


class MemberStateReads:
    """The reads of this module over one store; stateless, cheap to make per call."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def state(self, user_id: str, conversation_id: str) -> JoinState:
        """Receipts, pins and the member's own settings (``not_member`` otherwise)."""
        members = await self._members(user_id, conversation_id)
        receipts = await self._receipts(conversation_id, members, None)
        pins = await self.store.list_pinned(conversation_id)
        own = next(m for m in members if m.user_id == user_id)
        return JoinState(receipts=receipts, pins=pins, settings=MemberSettings.of(own))

    async def receipts(
        self, user_id: str, conversation_id: str, of_user: str | None = None
    ) -> list[Receipt]:
        """Every member's receipt, or ``of_user``'s alone (delivered included at any size)."""
        members = await self._members(user_id, conversation_id)
        if of_user is not None:
            rules.check_text(of_user, "user_id")
            members = [m for m in members if m.user_id == of_user]
            if not members:
                raise WhisprError(Reason.NOT_FOUND, f"{of_user} is not a member", field="user_id")
        return await self._receipts(conversation_id, members, of_user)

    async def pins(self, user_id: str, conversation_id: str) -> list[Message]:
        """The pinned messages, by seq."""
        await self._members(user_id, conversation_id)
        return await self.store.list_pinned(conversation_id)

    async def settings(self, user_id: str, conversation_id: str) -> MemberSettings:
        """The member's own settings of the conversation."""
        members = await self._members(user_id, conversation_id)
        return MemberSettings.of(next(m for m in members if m.user_id == user_id))

    async def thread(
        self,
        user_id: str,
        conversation_id: str,
        root_seq: int,
        *,
        after_seq: int = 0,
        limit: int = 50,
    ) -> list[Message]:
        """A page of the replies to ``root_seq``, ascending after ``after_seq``.

        The next page starts after the last reply of this one; a page shorter than ``limit``
        is the last. ``not_found`` when the conversation has no message ``root_seq``.
        """
        rules.check_position(root_seq, "root_seq")
        rules.check_position(after_seq, "after_seq")
        page = rules.page_limit(limit)
        await self._members(user_id, conversation_id)
        if root_seq < 1 or await self.store.get_message(conversation_id, root_seq) is None:
            raise WhisprError(
                Reason.NOT_FOUND, f"no message {root_seq} in this conversation", field="root_seq"
            )
        return await self.store.list_thread(
            conversation_id, root_seq, after_seq=after_seq, limit=page, viewer_id=user_id
        )

    async def unread(self, user_id: str) -> UnreadState:
        """Unread and mention counts of every conversation of the user."""
        rules.check_text(user_id, "user_id")
        unread = await self.store.unread_counts(user_id)
        mentions = await self.store.mention_counts(user_id)
        return UnreadState(unread=unread, mentions=mentions)

    # -- plumbing ---------------------------------------------------------------------

    async def _members(self, user_id: str, conversation_id: str) -> list[Member]:
        if not conversation_id or len(conversation_id) > 64:
            raise WhisprError(Reason.NOT_FOUND, f"no conversation {conversation_id!r}")
        rules.check_text(conversation_id, "conversation_id")
        members = await self.store.list_members(conversation_id)
        if not members and await self.store.get_conversation(conversation_id) is None:
            raise WhisprError(Reason.NOT_FOUND, f"no conversation {conversation_id!r}")
        rules.require_member({m.user_id: m for m in members}, user_id)
        return members

    async def _receipts(
        self, conversation_id: str, members: list[Member], of_user: str | None
    ) -> list[Receipt]:
        with_delivered = of_user is not None or len(members) <= RECEIPTS_DELIVERED_MAX_MEMBERS
        delivered: dict[str, int] = {}
        if with_delivered:
            for cursor in await self.store.get_delivery_cursors(conversation_id, of_user):
                delivered[cursor.user_id] = max(
                    delivered.get(cursor.user_id, 0), cursor.delivered_seq
                )
        return [
            Receipt(
                user_id=m.user_id,
                read_seq=m.read_seq,
                delivered_seq=delivered.get(m.user_id, 0) if with_delivered else None,
            )
            for m in members
        ]
