"""``Messaging``: the API the gateway and gRPC call for everything conversational.

It finds (or starts) the conversation's actor for every write that must be
ordered, and goes to the store directly for reads and for per-user cursors,
which need no ordering with sends. Both paths enforce the same rules
(:mod:`actors.rules`) and raise the same :class:`WhisprError` values.

An actor may die between being found and being called (it passivated, it
crashed, its node's supervisor is restarting). Every write is safe to retry
(sends by client id, the others are idempotent), so a call that meets an actor
that stopped normally is retried on a fresh one. A call that was in the actor
when it crashed is answered ``unavailable`` at once (it may or may not have
taken effect, and the client retries it): the supervisor restarts the actor
(``transient``, at most 3 restarts in 60 s each, ``whispr.node``), registered
under the same name, so the retry finds it running.

Calls are asks of a typed :class:`~actors.calls.Call` on the actor's ref,
all through :meth:`Messaging._ask`, which mypy checks against the actor's
method: its arguments, and the type of the answer. ``send``, the hot path,
is one registry lookup and one ask, like every call.

A member's draft is screened by the sibling services (``screen``) only once
the actor has said that the sender may post there: a non-member's message
costs no call outside the node.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Concatenate, ParamSpec, TypeAlias, TypeVar, overload

import msgspec
import pykka

from actors import admin, disappearing, rules
from actors.calls import Call, Deferred
from actors.conversation import CheckedMembers, ConversationActor, ConversationDeps, Draft
from actors.e2e import rules as e2e_rules
from actors.e2e.delivery import attach_envelopes
from actors.e2e.directory import KeyDirectory
from actors.errors import Reason, WhisprError
from actors.events import conversation_topic, encode_event, user_topic
from actors.ids import new_id
from actors.member_settings import MemberSettings, SettingsChange
from actors.model import Conversation, ConversationSummary, Member, MembershipChange, Message
from actors.rules import MAX_PAGE
from actors.search import CursorCodec, MessageFilters, check_filters
from actors.search_reads import SearchReads
from actors.stream import POSITION_CHECK_S, ConversationStream, Deliver, PositionCheck
from actors.tracing import sampled_context
from supervisors import ChildSpec, Ref, Registry, Restart, StartChildError

__all__ = ["Messaging"]

P = ParamSpec("P")
R = TypeVar("R")

#: One of the conversation actor's methods, as ``_ask`` takes it: ``ConversationActor.send``.
Handler: TypeAlias = Callable[Concatenate[ConversationActor, P], R]

#: Times an end-to-end send is checked again when the members changed meanwhile.
E2E_SEND_ATTEMPTS = 3
#: The metadata key of an end-to-end edit: the seq of the message it edits (set by the server).
EDIT_OF = "edit_of"


def _envelope_send(draft: Draft) -> bool:
    """An end-to-end draft without content: its ciphertext is in envelopes (maybe none yet,
    which the device check then refuses as ``mismatched_devices``)."""
    return draft.metadata.get("e2e") is True and not draft.content and draft.kind == "text"


class Messaging:
    """Conversations and messages for one node; thread: the node's event loop."""

    def __init__(
        self,
        deps: ConversationDeps,
        *,
        registry: Registry,
        start_child: Callable[[ChildSpec], Awaitable[Ref[Any]]],
        screen: Callable[[str, str, Draft], Awaitable[None]] | None = None,
        position_check_s: float = POSITION_CHECK_S,
        cursor_key: bytes = b"",
        e2e: KeyDirectory | None = None,
    ) -> None:
        self.deps = deps
        #: Search cursors (actors/search.py), keyed with the node's secret so that any node
        #: of the cluster takes a cursor another gave, and no client can make one up.
        self.cursors = CursorCodec(cursor_key)
        #: The key directory, for end-to-end sends and their delivery (actors/e2e/).
        self.e2e = e2e
        self.registry = registry
        self._start_child = start_child
        #: The node's check of its followers' positions against the store (one for all).
        self.positions = PositionCheck(
            deps.store.last_seqs, deps.store.memberships, interval_s=position_check_s
        )
        # Events published while the broker was away are lost: check every stream at once.
        deps.broker.on_reconnect(self.positions.check_soon)
        #: Checks a member's draft before it is sent (media and moderation services);
        #: raises the refusal. None: no check beyond the conversation's rules.
        self.screen = screen

    # -- conversations ---------------------------------------------------------------

    async def create_group(
        self,
        creator_id: str,
        title: str | None,
        member_ids: Sequence[str],
        *,
        field: str = "member_ids",
    ) -> Conversation:
        """A new group owned by its creator, with the given members.

        ``field`` is what the caller's API calls the members (``members`` on the WebSocket),
        so that a refusal names the field the client sent.
        """
        rules.check_title(title)
        rules.check_user_ids(member_ids, field)
        others = [u for u in dict.fromkeys(member_ids) if u and u != creator_id]
        if len(others) + 1 > rules.MAX_GROUP_MEMBERS:
            raise WhisprError(
                Reason.INVALID,
                f"a group has at most {rules.MAX_GROUP_MEMBERS} members",
                field=field,
            )
        now = self.deps.clock()
        conversation = Conversation(
            id=new_id(),
            kind="group",
            title=title,
            avatar=None,
            created_by=creator_id,
            created_at=now,
            last_message_at=None,
            settings={"who_can_post": "all"},
        )
        members = [
            Member(conversation_id=conversation.id, user_id=creator_id, role="owner", joined_at=now)
        ]
        members += [
            Member(conversation_id=conversation.id, user_id=u, role="member", joined_at=now)
            for u in others
        ]
        await self.deps.store.create_conversation(conversation, members)
        for member in members:
            self.deps.membership_changed(
                MembershipChange(
                    conversation_id=conversation.id,
                    user_id=member.user_id,
                    change="added",
                    by=creator_id,
                    role=member.role,
                )
            )
        self._tell_users(
            [m.user_id for m in members], "conversation_added", {"conversation": conversation}
        )
        return conversation

    async def direct(self, user_id: str, other_id: str, *, field: str = "user_id") -> Conversation:
        """The one direct conversation between two users, created on first use.

        ``field`` is what the caller's API calls the other user (``with_user`` on the
        WebSocket), so that a refusal names the field the client sent.
        """
        if not other_id or other_id == user_id:
            raise WhisprError(
                Reason.INVALID, "a direct conversation needs another user", field=field
            )
        rules.check_user_ids([other_id], field)
        conversation = await self.deps.store.get_or_create_direct(
            user_id, other_id, self.deps.clock()
        )
        self._tell_users([user_id, other_id], "conversation_added", {"conversation": conversation})
        return conversation

    async def conversation(self, user_id: str, conversation_id: str) -> Conversation:
        """A conversation the user is a member of."""
        conversation, _ = await self.conversation_at(user_id, conversation_id)
        return conversation

    async def conversation_at(self, user_id: str, conversation_id: str) -> tuple[Conversation, int]:
        """A conversation the user is a member of, and its last seq (one ask of its actor)."""
        conversation, members, last_seq = await self._ask(
            conversation_id, ConversationActor.snapshot
        )
        rules.require_member({m.user_id: m for m in members}, user_id)
        return conversation, last_seq

    def stream(
        self,
        conversation_id: str,
        *,
        viewer_id: str | None,
        deliver: Deliver,
        on_overflow: Callable[[], None],
        on_revoked: Callable[[], None] | None = None,
        device: tuple[str, str] | None = None,
    ) -> ConversationStream:
        """A follower's stream of one conversation, once the caller knows it may read it.

        Its pages come straight from the store, as ``viewer_id`` sees them (messages they hid
        left out; None: a trusted service sees all): the membership was checked when the
        follower joined; a removal ends the follower by its ``member_removed`` event, or, if
        that event was lost, at the next position check (``on_revoked``).
        """
        store, e2e, clock = self.deps.store, self.e2e, self.deps.clock

        def read_page(after_seq: int) -> Awaitable[list[Message]]:
            return store.page_messages(
                conversation_id, after_seq=after_seq, limit=MAX_PAGE, viewer_id=viewer_id
            )

        if device is not None and e2e is not None:
            # A registered device's pages: its end-to-end messages with its own envelopes.
            plain = read_page
            user_id, device_id = device

            async def read_device_page(after_seq: int) -> list[Message]:
                page = await plain(after_seq)
                return await attach_envelopes(
                    e2e.keys, conversation_id, user_id, device_id, page, clock()
                )

            read_page = read_device_page

        return ConversationStream(
            self.deps.broker,
            conversation_id,
            read_page=read_page,
            page_size=MAX_PAGE,
            deliver=deliver,
            on_overflow=on_overflow,
            positions=self.positions,
            viewer_id=viewer_id,
            on_revoked=on_revoked,
        )

    def close(self) -> None:
        """The node is stopping: no more position checks."""
        self.positions.close()

    async def members(self, user_id: str, conversation_id: str) -> list[Member]:
        """The members of a conversation the user is in."""
        _, members, _ = await self._ask(conversation_id, ConversationActor.snapshot)
        rules.require_member({m.user_id: m for m in members}, user_id)
        return members

    async def list_conversations(
        self,
        user_id: str,
        *,
        limit: int = 50,
        before: float | None = None,
        before_id: str | None = None,
    ) -> list[ConversationSummary]:
        """The user's conversations, most recently active first, with unread counts.

        The next page starts after the last row's activity time *and* id
        (``before``, ``before_id``), so conversations active at the same
        instant are neither skipped nor repeated.
        """
        if before_id is not None:
            rules.check_text(before_id, "before_id")
        return await self.deps.store.list_user_conversations(
            user_id, rules.page_limit(limit), before, before_id=before_id
        )

    # -- writes, through the conversation's actor ----------------------------------------

    async def send(
        self,
        user_id: str,
        conversation_id: str,
        draft: Draft,
        *,
        scheduled: dict[str, Any] | None = None,
        device_id: str | None = None,
    ) -> Message:
        """Send a message; returns it once durable (the original one on a retried client id).

        With screening, the sender's right to post is asked first: the sibling
        services see only drafts the conversation would take. ``scheduled``: the scheduler
        sends a schedule's draft on its author's behalf (actors/schedules.py), with the
        same checks, asked now. A draft with envelopes (end
        to end) is checked against the members' devices and its envelopes stored first
        (:meth:`_prepare_e2e`); ``device_id`` is the sending device.
        """
        if EDIT_OF in draft.metadata:  # the server's mark of an edit it checked
            raise WhisprError(Reason.INVALID, f"{EDIT_OF} is set by edit_message", field="metadata")
        if draft.envelopes or draft.blind_tokens or _envelope_send(draft):
            return await self._send_e2e(user_id, conversation_id, draft, device_id)
        if self.screen is not None:
            await self._ask(conversation_id, ConversationActor.check_can_post, user_id)
            await self.screen(user_id, conversation_id, draft)
        return await self._ask(conversation_id, ConversationActor.send, user_id, draft, scheduled)

    async def check_can_post(self, user_id: str, conversation_id: str) -> None:
        """Refuse (``not_member``, ``forbidden``) a user who may not post here now."""
        await self._ask(conversation_id, ConversationActor.check_can_post, user_id)

    async def set_disappearing(
        self, user_id: str, conversation_id: str, seconds: object
    ) -> Conversation:
        """Make the conversation's new messages disappear ``seconds`` after they are sent
        (None or 0: never); see actors/disappearing.py."""
        return await self._ask(conversation_id, disappearing.set_disappearing, user_id, seconds)

    async def _send_e2e(
        self, user_id: str, conversation_id: str, draft: Draft, device_id: str | None
    ) -> Message:
        """An end-to-end send: envelopes checked and stored, then the draft to the actor.

        The devices are checked against the members the actor had when asked, and their
        membership version. The actor takes the draft only if its members are still those,
        and the store writes it only if the conversation's version is still that one when
        the batch is written, under the row lock every change of members takes: whichever
        node's actor added a member, no member is added between the check and the message's
        place in the conversation's order without its devices being checked. On either
        refusal (``members_changed``) the check runs again on the members read afresh (a
        new member with devices makes it ``mismatched_devices``). Whatever refuses the send
        once its envelopes are stored, they are deleted: nothing is kept for a message that
        was not.
        """
        for attempt in range(1, E2E_SEND_ATTEMPTS + 1):
            prepared = await self._prepare_e2e(
                user_id, conversation_id, draft, device_id, reload=attempt > 1
            )
            if isinstance(prepared, Message):
                return prepared  # a retry of a message already stored
            try:
                if self.screen is not None:
                    await self._ask(conversation_id, ConversationActor.check_can_post, user_id)
                    await self.screen(user_id, conversation_id, draft)
                return await self._ask(
                    conversation_id, ConversationActor.send, user_id, draft, members=prepared
                )
            except WhisprError as error:
                await self._drop_unsent(conversation_id, user_id, draft.client_id, error)
                if not error.details.get("members_changed") or attempt == E2E_SEND_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _drop_unsent(
        self, conversation_id: str, user_id: str, client_id: str, error: WhisprError
    ) -> None:
        """Delete the envelopes and blind tokens of a send refused after they were stored.

        Not after ``unavailable``: the message may have been written (a crash, a lost
        answer), and its retry must still find them. Nor when a message with this client
        id is stored (a concurrent retry of it won).
        """
        e2e = self.e2e
        if e2e is None or error.reason is Reason.UNAVAILABLE:
            return
        if await self.deps.store.find_by_client_id(conversation_id, user_id, client_id) is None:
            await e2e.keys.forget_message(conversation_id, user_id, client_id)

    async def _prepare_e2e(
        self,
        user_id: str,
        conversation_id: str,
        draft: Draft,
        device_id: str | None,
        *,
        reload: bool = False,
    ) -> Message | CheckedMembers:
        """Check an end-to-end draft and store its envelopes and blind tokens before it is
        sent; returns the members it was checked against, or the original message when
        this is a retry of a stored one. ``reload``: the actor reads the members from the
        store first (the last attempt was refused ``members_changed``).

        Refused, nothing stored: ``mismatched_devices`` / ``stale_devices`` when the
        envelopes do not match the members' current devices (actors/e2e/rules.py). Stored
        before the message, so that no follower ever reads the message without them.
        """
        e2e = self.e2e
        if e2e is None:
            raise WhisprError(Reason.INVALID, "end-to-end envelopes are not served here")
        if draft.metadata.get("e2e") is not True:
            raise WhisprError(
                Reason.INVALID,
                "envelopes and blind tokens need metadata.e2e true",
                field="metadata",
            )
        if draft.content:
            raise WhisprError(
                Reason.INVALID,
                "an end-to-end message carries its ciphertext in envelopes, not content",
                field="content",
            )
        rules.check_client_id(draft.client_id)
        e2e_rules.check_blind_tokens(draft.blind_tokens, "blind_tokens", e2e_rules.MAX_BLIND_TOKENS)
        conversation, members, version = await self._ask(
            conversation_id, ConversationActor.versioned_snapshot, reload=reload
        )
        member_ids = [m.user_id for m in members]
        # Nothing is stored for a sender who may not post here.
        rules.require_can_post(conversation, {m.user_id: m for m in members}, user_id)
        try:
            await e2e.check_envelopes(user_id, device_id, member_ids, draft.envelopes)
        except WhisprError as error:
            if error.reason in (Reason.MISMATCHED_DEVICES, Reason.STALE_DEVICES):
                # A retry of a send stored before the devices changed: its original.
                original = await self.deps.store.find_by_client_id(
                    conversation_id, user_id, draft.client_id
                )
                if original is not None:
                    return original
            raise
        await e2e.keep_envelopes(conversation_id, user_id, draft.client_id, draft.envelopes)
        await e2e.keys.put_blind_tokens(
            conversation_id, user_id, draft.client_id, draft.blind_tokens
        )
        return CheckedMembers(frozenset(member_ids), version)

    async def search_blind(
        self,
        user_id: str,
        conversation_id: str,
        tokens: Sequence[bytes],
        *,
        before_seq: int | None = None,
        limit: int = 50,
    ) -> list[int]:
        """Blind-index search: the seqs of the messages carrying every token, newest first,
        that the member can see (not deleted, not hidden by them)."""
        e2e = self.e2e
        if e2e is None:
            raise WhisprError(Reason.INVALID, "blind-index search is not served here")
        if not tokens:
            raise WhisprError(Reason.INVALID, "name at least one token", field="blind_tokens")
        e2e_rules.check_blind_tokens(tokens, "blind_tokens", e2e_rules.MAX_SEARCH_TOKENS)
        if before_seq is not None:
            rules.check_position(before_seq, "before_seq")
        await self._require_member(user_id, conversation_id)
        return await e2e.keys.search_blind(
            conversation_id, user_id, tokens, before_seq, rules.page_limit(limit)
        )

    async def send_system(
        self, conversation_id: str, event: str, details: dict[str, Any], client_id: str
    ) -> Message:
        """A system or service message (for sibling services)."""
        return await self._ask(
            conversation_id, ConversationActor.post_system, event, details, client_id
        )

    async def send_as_service(self, service_id: str, conversation_id: str, draft: Draft) -> Message:
        """A message from a sibling service (sender ``service_id``), idempotent by client id."""
        return await self._ask(
            conversation_id, ConversationActor.post_as_service, service_id, draft
        )

    async def describe(self, conversation_id: str) -> tuple[Conversation, list[Member], int]:
        """A conversation, its members and last seq, for a trusted caller (no membership asked)."""
        return await self._ask(conversation_id, ConversationActor.snapshot)

    async def edit(self, user_id: str, conversation_id: str, seq: int, content: str) -> Message:
        """Change one's own message; the new content is screened as a new message's is.

        With screening, membership is asked first (as for :meth:`send`).
        """
        if self.screen is not None:
            await self._require_member(user_id, conversation_id)
            await self.screen(
                user_id, conversation_id, Draft(client_id=f"edit-{seq}", content=content)
            )
        return await self._ask(conversation_id, ConversationActor.edit, user_id, seq, content)

    async def edit_e2e(
        self,
        user_id: str,
        conversation_id: str,
        seq: int,
        draft: Draft,
        *,
        device_id: str | None = None,
    ) -> Message:
        """Edit one's own end-to-end message with new envelopes; returns the edit.

        The edit carries content, so it follows the envelope rule: it is sent as an
        end-to-end message of its own (``metadata.edit_of``: ``seq``), under the same device
        check as any send, with its own seq, so that every device receives it live or on
        catch-up and acknowledges it like any other. Idempotent by the draft's client id.
        """
        rules.check_position(seq, "seq")
        if not draft.client_id:
            raise WhisprError(
                Reason.INVALID, "an edit with envelopes needs a client_id", field="client_id"
            )
        await self._ask(conversation_id, ConversationActor.check_e2e_edit, user_id, seq)
        metadata = {**draft.metadata, "e2e": True, EDIT_OF: seq}
        edit = msgspec.structs.replace(draft, metadata=metadata)
        return await self._send_e2e(user_id, conversation_id, edit, device_id)

    async def delete(self, user_id: str, conversation_id: str, seq: int) -> Message:
        deleted = await self._ask(conversation_id, ConversationActor.delete, user_id, seq)
        if self.e2e is not None and deleted.metadata.get("e2e") is True:
            # Deleted for everyone: its envelopes and blind tokens go with its content.
            await self.e2e.keys.forget_message(
                conversation_id, deleted.sender_id, deleted.client_id
            )
        return deleted

    async def hide(self, user_id: str, conversation_id: str, seq: int) -> None:
        """Delete for oneself: the message disappears from this user's history only."""
        rules.check_position(seq, "seq")
        await self._require_member(user_id, conversation_id)
        await self.deps.store.hide_message(conversation_id, seq, user_id)

    async def react(
        self, user_id: str, conversation_id: str, seq: int, emoji: str, *, add: bool = True
    ) -> Message:
        return await self._ask(
            conversation_id, ConversationActor.react, user_id, seq, emoji, add=add
        )

    async def pin(
        self, user_id: str, conversation_id: str, seq: int, *, pinned: bool = True
    ) -> Message:
        return await self._ask(conversation_id, ConversationActor.pin, user_id, seq, pinned=pinned)

    async def add_members(
        self,
        user_id: str,
        conversation_id: str,
        user_ids: Sequence[str],
        *,
        trusted: bool = False,
    ) -> list[Member]:
        """Add users to a group; ``trusted``: ``user_id`` is a sibling service, no role needed."""
        added = await self._ask(
            conversation_id, ConversationActor.add_members, user_id, list(user_ids), trusted=trusted
        )
        if added:
            conversation = await self.deps.store.get_conversation(conversation_id)
            self._tell_users(
                [m.user_id for m in added], "conversation_added", {"conversation": conversation}
            )
        return added

    async def remove_member(
        self, user_id: str, conversation_id: str, target_id: str, *, trusted: bool = False
    ) -> None:
        """Leave or remove; ``trusted``: ``user_id`` is a sibling service, no role needed."""
        await self._ask(
            conversation_id, ConversationActor.remove_member, user_id, target_id, trusted=trusted
        )
        self._tell_users([target_id], "conversation_removed", {"conversation_id": conversation_id})

    async def set_notifications(
        self,
        user_id: str,
        conversation_id: str,
        *,
        muted_until: float | None = None,
        notifications: str | None = None,
    ) -> Member:
        return await self._ask(
            conversation_id,
            ConversationActor.set_notifications,
            user_id,
            muted_until=muted_until,
            notifications=notifications,
        )

    async def update_member_settings(
        self, user_id: str, conversation_id: str, change: SettingsChange
    ) -> MemberSettings:
        """Set the member's own settings; the user's devices are told (``user:<id>``)."""
        member = await self._ask(
            conversation_id, ConversationActor.update_member_settings, user_id, change
        )
        settings = MemberSettings.of(member)
        self._tell_users([user_id], "member_settings_updated", {"settings": settings})
        return settings

    # -- group administration, run on the conversation's actor (actors/admin.py) --------

    async def leave(self, user_id: str, conversation_id: str) -> None:
        """Leave a group; the owner's leaving hands the ownership over."""
        await self.remove_member(user_id, conversation_id, user_id)

    async def update_conversation(
        self,
        user_id: str,
        conversation_id: str,
        changes: admin.ConversationChanges,
        *,
        trusted: bool = False,
    ) -> Conversation:
        """Change a group's title, avatar, description or settings."""
        return await self._ask(
            conversation_id, admin.update_conversation, user_id, changes, trusted=trusted
        )

    async def set_role(
        self,
        user_id: str,
        conversation_id: str,
        target_id: str,
        role: str,
        *,
        trusted: bool = False,
    ) -> Member:
        """Give a member a role (``owner``: transfer the ownership to them)."""
        return await self._ask(
            conversation_id, admin.set_role, user_id, target_id, role, trusted=trusted
        )

    async def transfer_ownership(
        self, user_id: str, conversation_id: str, target_id: str, *, trusted: bool = False
    ) -> tuple[Member, Member | None]:
        """Make another member the owner; the former owner stays as an admin."""
        return await self._ask(
            conversation_id, admin.transfer_ownership, user_id, target_id, trusted=trusted
        )

    async def list_members(
        self,
        user_id: str,
        conversation_id: str,
        *,
        after: str | None = None,
        limit: int = MAX_PAGE,
        trusted: bool = False,
    ) -> admin.MembersPage:
        """A page of a conversation's members with their roles, oldest first."""
        return await self._ask(
            conversation_id, admin.list_members, user_id, after, limit, trusted=trusted
        )

    # -- reads and cursors, straight to the store -------------------------------------

    async def history(
        self,
        user_id: str,
        conversation_id: str,
        *,
        before_seq: int | None = None,
        after_seq: int | None = None,
        limit: int = 50,
        filters: MessageFilters | None = None,
    ) -> list[Message]:
        """A page of messages, ascending: after_seq to catch up, before_seq to scroll back;
        with ``filters``, only the messages that match them (``actors/search.py``)."""
        await self._require_member(user_id, conversation_id)
        return await self.deps.store.page_messages(
            conversation_id,
            before_seq=before_seq,
            after_seq=after_seq,
            limit=rules.page_limit(limit),
            viewer_id=user_id,
            filters=None if filters is None else check_filters(filters),
        )

    @property
    def searches(self) -> SearchReads:
        """Searches and exports (``actors/search_reads.py``)."""
        return SearchReads(self.deps.store, self.cursors)

    async def mark_read(self, user_id: str, conversation_id: str, seq: int) -> int:
        """Move the user's read cursor forward; the user's other devices are told."""
        _, last_seq = await self._require_member(user_id, conversation_id)
        rules.check_position(seq, "seq")
        cursor = await self.deps.store.mark_read(conversation_id, user_id, min(seq, last_seq))
        payload = {"conversation_id": conversation_id, "user_id": user_id, "seq": cursor}
        self.deps.broker.publish(conversation_topic(conversation_id), encode_event("read", payload))
        self.deps.broker.publish(user_topic(user_id), encode_event("read", payload))
        return cursor

    async def mark_delivered(
        self, user_id: str, device_id: str, conversation_id: str, seq: int
    ) -> int:
        """Record that one of the user's devices has messages up to ``seq``."""
        _, last_seq = await self._require_member(user_id, conversation_id)
        rules.check_position(seq, "seq")
        rules.check_text(device_id, "device_id")
        cursor = await self.deps.store.mark_delivered(
            conversation_id, user_id, device_id, min(seq, last_seq)
        )
        if self.e2e is not None:  # the device has them: its envelopes up to here go
            await self.e2e.keys.delete_delivered_envelopes(
                conversation_id, user_id, device_id, cursor
            )
        payload = {
            "conversation_id": conversation_id,
            "user_id": user_id,
            "device_id": device_id,
            "seq": cursor,
        }
        self.deps.broker.publish(
            conversation_topic(conversation_id), encode_event("delivered", payload)
        )
        return cursor

    async def service_history(
        self,
        conversation_id: str,
        *,
        before_seq: int | None = None,
        after_seq: int | None = None,
        limit: int = 50,
        filters: MessageFilters | None = None,
    ) -> list[Message]:
        """A page of messages for a trusted caller (as the WebSocket API's ``history``)."""
        await self.describe(conversation_id)  # not_found for an unknown conversation
        return await self.deps.store.page_messages(
            conversation_id,
            before_seq=before_seq,
            after_seq=after_seq,
            limit=rules.page_limit(limit),
            filters=None if filters is None else check_filters(filters),
        )

    async def unread_counts(self, user_id: str) -> dict[str, int]:
        return await self.deps.store.unread_counts(user_id)

    # -- plumbing ---------------------------------------------------------------------------

    async def _require_member(self, user_id: str, conversation_id: str) -> tuple[Member, int]:
        return await self._ask(conversation_id, ConversationActor.membership, user_id)

    async def _actor(self, conversation_id: str) -> Ref[Any]:
        if not conversation_id or len(conversation_id) > 64:
            raise WhisprError(Reason.NOT_FOUND, f"no conversation {conversation_id!r}")
        rules.check_text(conversation_id, "conversation_id")
        key = ("conversation", conversation_id)

        async def start() -> Ref[Any]:
            # Checked here so an unknown id is a plain refusal, not an actor crash.
            if await self.deps.store.get_conversation(conversation_id) is None:
                raise WhisprError(Reason.NOT_FOUND, f"no conversation {conversation_id!r}")
            return await self._start_registered(key, self._spec(conversation_id))

        try:
            return await self.registry.lookup_or_start(key, start)
        except Exception as exc:
            raise _as_whispr_error(exc) from exc

    def _spec(self, conversation_id: str) -> ChildSpec:
        """A ``transient`` child: restarted after a crash, not after passivation (normal).

        Each incarnation registers itself (``via``) when it starts, so a restart by the
        supervisor is found under the same name before the next call arrives.
        """
        deps = self.deps
        key = ("conversation", conversation_id)
        return ChildSpec(
            id=key,
            start=self.registry.via(key, lambda: ConversationActor.start(deps, conversation_id)),
            restart=Restart.TRANSIENT,
            shutdown=5.0,
        )

    async def _start_registered(self, key: tuple[str, str], spec: ChildSpec) -> Ref[Any]:
        """Start the conversation's actor; the one its supervisor restarted meanwhile, if any."""
        running = self.registry.whereis(key)
        if running is not None:
            return running
        try:
            return await self._start_child(spec)
        except StartChildError:
            running = self.registry.whereis(key)  # the name was taken by a restart: use it
            if running is None:
                raise
            return running

    @overload
    async def _ask(
        self,
        conversation_id: str,
        handler: Handler[P, Coroutine[Any, Any, R]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R: ...

    @overload
    async def _ask(
        self,
        conversation_id: str,
        handler: Handler[P, Deferred[R]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R: ...

    @overload
    async def _ask(
        self,
        conversation_id: str,
        handler: Handler[P, R | Deferred[R]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R: ...

    async def _ask(
        self, conversation_id: str, handler: Handler[..., Any], /, *args: Any, **kwargs: Any
    ) -> Any:
        """Call ``handler(actor, *args, **kwargs)`` on the conversation's actor; its answer.

        The answer is what the handler returns, what its coroutine gives, or
        for a handler that returns ``Deferred[R]``, the ``R`` it answers with
        later: the overloads say so to mypy. The live actor is found in the
        registry (started when there is none) and asked once; if it had stopped
        normally (passivated) meanwhile, a fresh one is asked again. A crash of the
        actor while it held the call is ``unavailable`` (see the module docstring).
        """
        call = Call(handler, args, kwargs, sampled_context())
        key = ("conversation", conversation_id)
        for attempt in (1, 2):
            ref = self.registry.whereis(key)
            if ref is None:
                ref = await self._actor(conversation_id)
            try:
                return await ref.ask_soon(call)
            except WhisprError:
                raise
            except pykka.ActorDeadError as exc:
                if attempt == 2 or _crashed(ref):
                    raise _restarting() from exc
            except Exception as exc:  # the handler crashed the actor
                raise _restarting() from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _tell_users(self, user_ids: Sequence[str], event: str, payload: dict[str, Any]) -> None:
        data = encode_event(event, payload)
        for user_id in user_ids:
            self.deps.broker.publish(user_topic(user_id), data)


def _crashed(ref: Ref[Any]) -> bool:
    """Whether the actor ended abnormally (its supervisor restarts it), not by passivating."""
    reason = ref.exit_reason
    return reason is not None and reason.abnormal


def _restarting() -> WhisprError:
    return WhisprError(Reason.UNAVAILABLE, "the conversation is restarting; try again")


def _as_whispr_error(exc: BaseException) -> WhisprError:
    """The reason an actor failed to start, if it was one of ours (not found...)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, WhisprError):
            return seen
        seen = seen.__cause__
    return WhisprError(Reason.UNAVAILABLE, "the conversation could not be loaded")
