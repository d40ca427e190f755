"""``ConversationActor``: the sequencer of one active conversation.

One actor per active conversation, started on demand under the node's
Conversations dynamic supervisor and found through the registry. It holds
what every write needs (the conversation, its members, the last ``seq`` and a
bounded cache of recent messages) so that a send costs one durable insert and
nothing else, and it serialises the writes that must be ordered: sends,
edits, deletes, reactions, pins, membership and settings.

Crash-only design: nothing it holds is authoritative. Acknowledged writes are
in the store before the caller hears back, so a crashed or passivated actor
is simply started afresh from the store: after a crash by its supervisor
(``transient``: at most 3 restarts in 60 s, then the next call starts it
again), after passivation (a normal exit) by the next call.

Sends are pipelined: the actor answers each one after its commit but takes
the next ones meanwhile, and the store gives the seqs at commit time (see
"the engine" below and docs/storage.md).

A send asked under a sampled span (its :class:`~actors.calls.Call` carries the
context) is traced here: a ``conversation send`` span from the send's arrival
to its answer, a ``group commit`` span for its wait in the batch and the write,
and a ``publish`` span whose ``traceparent`` travels in the broker event, so the
delivery on every other node joins the same trace. Unsampled sends make none.

Several nodes may briefly run an actor for the same conversation (routing
changes as nodes come and go). Correctness does not depend on there being
one: the store numbers each batch's sends after the last committed seq under
the conversation's row lock, so two actors' sends interleave in one gap-free
order; and membership changes made on another node arrive through the broker.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pykka
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from actors import permissions, rules, scheduling
from actors.broker import Broker, Subscription
from actors.calls import DEFERRED, Call, Deferred
from actors.e2e.model import Envelope
from actors.errors import Reason, WhisprError
from actors.events import conversation_topic, decode_event, encode_event, payload_of
from actors.ids import new_id, system_client_id
from actors.member_settings import SettingsChange
from actors.mentions import mention_metadata
from actors.model import (
    Conversation,
    Draft,
    InsertResult,
    Member,
    MembershipChange,
    Message,
    Unsequenced,
)
from actors.ports import Store
from actors.tracing import TRACER, span_context, traceparent
from supervisors import AsyncioActor
from supervisors.batching import Batcher
from supervisors.future import AsyncioFuture

__all__ = ["CheckedMembers", "ConversationActor", "ConversationDeps", "Draft"]

SYSTEM_SENDER = "system"


#: See ``ConversationDeps.members_max_age_s``.
MEMBERS_MAX_AGE_S = 5.0
#: A membership version no conversation has (the store's start at 0 and only grow): what
#: the actor holds when it could not read the version after a change of its own.
UNKNOWN_MEMBER_VERSION = -1


@dataclass(frozen=True)
class ConversationDeps:
    """What a conversation actor needs from its node."""

    store: Store
    broker: Broker
    commit: Batcher[Message, InsertResult]
    max_content_bytes: int = 10_000
    idle_timeout_s: float = 300.0
    #: Seconds the actor answers membership questions from its member list before reading
    #: it again from the store: the longest a removal whose event was lost goes unseen here.
    members_max_age_s: float = MEMBERS_MAX_AGE_S
    cache_size: int = 100
    clock: Callable[[], float] = field(default=time.time)
    #: Told of every new message once it is durable, with the conversation and its
    #: members at that moment (push notifications); must not block or raise.
    on_new_message: Callable[[Conversation, Mapping[str, Member], Message], None] | None = None
    #: Told of every membership change once it is durable (the audit log); must not block
    #: or raise.
    on_membership_change: Callable[[MembershipChange], None] | None = None

    def membership_changed(self, change: MembershipChange) -> None:
        """Tell :attr:`on_membership_change` of ``change``, if anyone listens."""
        if self.on_membership_change is not None:
            self.on_membership_change(change)


@dataclass(frozen=True)
class CheckedMembers:
    """The members an end-to-end draft's envelopes were checked against, and the membership
    version they were read at (:meth:`ConversationActor.versioned_snapshot`).

    The actor refuses the draft at once if its own members moved on; the store refuses it
    when it writes the batch if the conversation's version did (a change made through
    another node's actor that this one has not heard of): the store's commit is the judge.
    """

    user_ids: frozenset[str]
    version: int


def _members_changed() -> WhisprError:
    """The refusal of an end-to-end send whose members changed after its devices were
    checked: ``Messaging`` checks them again against the new members."""
    return WhisprError(
        Reason.CONFLICT,
        "the members changed while the envelopes were checked; send again",
        field="envelopes",
        members_changed=True,
    )


def _new_message(message: Message, envelopes: tuple[Envelope, ...]) -> dict[str, Any]:
    """A ``new_message`` event's payload: the message, and its envelopes when end to end."""
    if envelopes:
        return {"message": message, "envelopes": envelopes}
    return {"message": message}


class _Remote:
    """A membership event published by another node's actor."""

    __slots__ = ("event",)

    def __init__(self, event: str) -> None:
        self.event = event


class _Expired:
    """A message of this conversation expired (``message_expired``): drop it from the cache."""

    __slots__ = ("seq",)

    def __init__(self, seq: int) -> None:
        self.seq = seq


class _Pending:
    """A send on its way to the store, everyone waiting for it, and its spans if sampled."""

    __slots__ = ("commit_span", "envelopes", "key", "message", "replies", "span")

    def __init__(
        self,
        key: tuple[str, str],
        message: Unsequenced,
        reply: pykka.Future[Any] | None,
        span: Span | None = None,
        envelopes: tuple[Envelope, ...] = (),
    ) -> None:
        self.key = key
        self.message = message
        #: The per-device ciphertexts its live event carries (each device takes its own).
        self.envelopes = envelopes
        self.replies = [reply]
        #: ``conversation send``, for a send whose call was sampled.
        self.span = span
        #: ``group commit``, while its chunk is in the store's hands.
        self.commit_span: Span | None = None

    def traced_end(self, error: BaseException | None = None) -> None:
        """End its spans, if it has any (``error``: the send was not written)."""
        for span in (self.commit_span, self.span):
            if span is not None:
                if error is not None:
                    span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                span.end()
        self.commit_span = self.span = None


class _IdleCheck:
    __slots__ = ()


_IDLE_CHECK = _IdleCheck()
#: Events from other nodes after which the actor reloads the members (and the conversation).
_REMOTE_PREFIXES = ("member_", "conversation_updated")


class ConversationActor(AsyncioActor):
    """Owns the writes of one conversation; see the module docstring.

    Every public method is called by an ask (``Messaging`` sends typed
    :class:`~actors.calls.Call` messages) and is awaited there; ``send``,
    ``post_system`` and ``post_as_service`` answer later (``defer_reply``,
    returning :data:`~actors.calls.DEFERRED`), once durable;
    refusals are :class:`WhisprError` values for the caller (the actor carries
    on), anything else crashes the actor and the next call starts a fresh one.
    """

    expected_errors = (WhisprError,)

    def __init__(self, deps: ConversationDeps, conversation_id: str) -> None:
        super().__init__()
        self.deps = deps
        self.conversation_id = conversation_id
        self.topic = conversation_topic(conversation_id)
        self.conversation: Conversation | None = None
        self.members: dict[str, Member] = {}
        #: The store's membership version of ``members`` (``Store.versioned_members``).
        self.member_version = 0
        #: When ``members`` was read from the store (``time.monotonic``).
        self._members_at = 0.0
        self.last_seq = 0
        self._recent: OrderedDict[int, Message] = OrderedDict()
        self._by_client: dict[tuple[str, str], int] = {}
        self._subscription: Subscription | None = None
        self._last_active = time.monotonic()
        self._idle_timer: asyncio.TimerHandle | None = None
        # The send pipeline: see "the engine".
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._queued: list[_Pending] = []
        self._committing: list[_Pending] | None = None
        #: Set while this actor publishes (its broker handler is called for its own events).
        self._publishing = False
        #: The trace context of the call being handled, when it was sampled.
        self._call_trace: Context | None = None

    # -- lifecycle ----------------------------------------------------------------

    async def on_start(self) -> None:
        store = self.deps.store
        conversation = await store.get_conversation(self.conversation_id)
        if conversation is None:
            raise WhisprError(Reason.NOT_FOUND, f"no conversation {self.conversation_id}")
        # Subscribe before reading, so nothing another node changes is missed.
        self._subscription = await self.deps.broker.subscribe(self.topic, self._on_broker_event)
        self.conversation = conversation
        await self._reload_members()
        self.last_seq = await store.last_seq(self.conversation_id)
        for message in await store.page_messages(
            self.conversation_id, limit=min(self.deps.cache_size, rules.MAX_PAGE)
        ):
            self._remember(message)
        self._arm_idle_timer(self.deps.idle_timeout_s)

    def on_stop(self) -> None:
        self._release()

    def on_failure(self, *_exc_info: Any) -> None:
        self._release()

    def _release(self) -> None:
        if self._subscription is not None:
            self._subscription.cancel()
            self._subscription = None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def on_receive(self, message: Any) -> Any:
        if type(message) is Call:  # first: nearly every message is one
            if message.trace is None:
                return message.fn(self, *message.args, **message.kwargs)
            self._call_trace = message.trace
            try:
                return message.fn(self, *message.args, **message.kwargs)
            finally:
                self._call_trace = None
        if message is _IDLE_CHECK:
            return self._idle_check()
        if isinstance(message, _Remote):
            return self._apply_remote(message)
        if isinstance(message, _Expired):
            return self._forget(message)
        return super().on_receive(message)

    # -- reads (no I/O but a member list older than members_max_age_s) -------------------
    #
    # The member list is a cache of the store's, kept current by the broker's member_
    # events. An event can be lost (Redis away, its publisher killed) or late, so the list
    # is also read again when it is older than ``members_max_age_s``: a removal made
    # anywhere is seen here within that bound, whatever the broker did.

    async def membership(self, user_id: str) -> tuple[Member, int]:
        """The caller's member record and the last seq, or ``not_member``."""
        self._touch()
        members = await self._fresh_members()
        return rules.require_member(members, user_id), self.last_seq

    async def check_can_post(self, user_id: str) -> None:
        """Refuse (``not_member``, ``forbidden``) a user who may not post here.

        Asked before a draft goes to the sibling services for screening, so that
        a message that would be refused anyway costs them nothing.
        """
        self._touch()
        members = await self._fresh_members()
        rules.require_can_post(self._conversation(), members, user_id)

    async def snapshot(self) -> tuple[Conversation, list[Member], int]:
        """The conversation, its members and its last seq."""
        members = await self._fresh_members()
        return self._conversation(), list(members.values()), self.last_seq

    async def versioned_snapshot(
        self, *, reload: bool = False
    ) -> tuple[Conversation, list[Member], int]:
        """The conversation, its members and their membership version (for an end-to-end
        send's device check); ``reload``: read from the store first, whatever their age."""
        if reload:
            await self._reload_members()
        else:
            await self._fresh_members()
        return self._conversation(), list(self.members.values()), self.member_version

    async def _fresh_members(self) -> dict[str, Member]:
        if time.monotonic() - self._members_at > self.deps.members_max_age_s:
            await self._reload_members()
        return self.members

    async def _reload_members(self) -> None:
        await self._reload_member_list()
        # The settings decide rights too (who_can_post, who_can_add): read with the members,
        # so a change made on another node is seen here within the same bound.
        conversation = await self.deps.store.get_conversation(self.conversation_id)
        if conversation is not None:
            self.conversation = conversation

    async def _reload_member_list(self) -> None:
        """The members and their version, from one snapshot of the store's.

        A version read with the members it counts is never ahead of them (ahead, a send
        checked against too few members would pass the store's check).
        """
        read_at = time.monotonic()
        members, version = await self.deps.store.versioned_members(self.conversation_id)
        self.members = {m.user_id: m for m in members}
        self.member_version = version
        self._members_at = read_at

    async def _reread_after_own_change(self) -> None:
        """After this actor changed the members (stored, and applied to ``members``): read
        them again, with the version the change moved the store's to (another node's
        change may have moved it too). Unread (the store away), the version is unknown: an
        end-to-end send checked meanwhile is refused by the store and checked again."""
        try:
            await self._reload_member_list()
        except WhisprError:
            self.member_version = UNKNOWN_MEMBER_VERSION
            self._members_at = 0.0  # read again at the next question

    # -- writes -------------------------------------------------------------------------

    def send(
        self,
        sender_id: str,
        draft: Draft,
        scheduled: dict[str, Any] | None = None,
        *,
        members: CheckedMembers | None = None,
    ) -> Message | Deferred[Message]:
        """Queue the draft, answer once it is durable; idempotent by client id.

        ``scheduled``: the draft is a schedule's, sent now by the scheduler on its author's
        behalf (the mark it records, ``metadata.scheduled``). A message that is to disappear
        gets ``metadata.expires_at`` here (actors/scheduling.py).

        The reply is deferred: the actor goes on with its next message while
        this one commits, so the sends it takes meanwhile form its next chunk
        (see "the engine" below). A refusal is raised at once; a client id
        already in the cache is answered at once with the original.

        ``members``: the members an end-to-end draft's envelopes were checked against
        (``Messaging.send``); refused ``conflict`` with ``members_changed`` unless they are
        this actor's members now, and by the store when it writes the message unless their
        version is still the conversation's then (a change made through another node's
        actor included).
        """
        self._touch()
        conversation = self._conversation()
        if time.monotonic() - self._members_at > self.deps.members_max_age_s:
            self._refresh_members_soon()  # sends are not held for it: the store checks too
        rules.require_can_post(conversation, self.members, sender_id)
        if members is not None and (
            members.user_ids != self.members.keys() or members.version != self.member_version
        ):
            raise _members_changed()
        end_to_end = bool(draft.envelopes) or draft.metadata.get("e2e") is True
        rules.check_draft(draft, self.deps.max_content_bytes, end_to_end=end_to_end)
        metadata = mention_metadata(draft.content, draft.metadata, self.members, sender_id)
        if metadata is not None:  # actors/mentions.py
            draft = msgspec.structs.replace(draft, metadata=metadata)
        draft = scheduling.with_server_metadata(
            draft, self.deps.clock(), conversation.settings, scheduled
        )
        rules.check_metadata(draft.metadata)
        if draft.reply_to is not None and not 1 <= draft.reply_to <= self.last_seq:
            raise WhisprError(
                Reason.INVALID, f"reply_to {draft.reply_to} is not a message here", field="reply_to"
            )
        known = self._by_client.get((sender_id, draft.client_id))
        if known is not None and known in self._recent:
            return self._recent[known]
        self._enqueue(
            sender_id,
            draft,
            self.defer_reply(),
            member_version=None if members is None else members.version,
        )
        return DEFERRED

    def post_system(self, event: str, details: dict[str, Any], client_id: str) -> Deferred[Message]:
        """A system message (member added, title changed, ...), sequenced like any other."""
        rules.check_client_id(client_id)
        draft = _system_draft(event, details, client_id)
        rules.check_metadata(draft.metadata)
        self._enqueue(SYSTEM_SENDER, draft, self.defer_reply(), trusted=True)
        return DEFERRED

    def post_as_service(self, service_id: str, draft: Draft) -> Message | Deferred[Message]:
        """A message from a sibling service (``service:<name>``), not from a member.

        The caller is trusted (the gRPC layer authenticated it), so membership
        and posting rights are not asked; every other rule of :meth:`send`
        applies, idempotency by client id included.
        """
        self._touch()
        conversation = self._conversation()
        rules.check_draft(draft, self.deps.max_content_bytes)
        draft = scheduling.with_server_metadata(
            draft, self.deps.clock(), conversation.settings, None
        )
        rules.check_metadata(draft.metadata)
        known = self._by_client.get((service_id, draft.client_id))
        if known is not None and known in self._recent:
            return self._recent[known]
        self._enqueue(service_id, draft, self.defer_reply(), trusted=True)
        return DEFERRED

    async def edit(self, user_id: str, seq: int, content: str) -> Message:
        """Change the content of one's own message, keeping the edit time."""
        self._touch()
        await self._fresh_members()
        rules.require_member(self.members, user_id)
        rules.check_content(content, self.deps.max_content_bytes)
        original = await self._editable(user_id, seq)
        if _in_envelopes(original):
            # Its text is in envelopes: a plain edit would put it in the clear. The edit
            # carries envelopes instead (Messaging.edit_e2e, docs/e2e.md).
            raise WhisprError(
                Reason.INVALID,
                "an end-to-end message is edited with envelopes, not content",
                field="content",
            )
        if original.kind == "text" and not content:
            raise WhisprError(Reason.INVALID, "a text message needs content", field="content")
        edited = await self.deps.store.edit_message(
            self.conversation_id, seq, content, self.deps.clock()
        )
        self._changed(edited)
        self._publish("message_edited", {"message": edited})
        return edited

    async def check_e2e_edit(self, user_id: str, seq: int) -> None:
        """Refuse an edit with envelopes of anything but one's own end-to-end message (one
        whose text is in envelopes), as :meth:`edit` refuses a plain edit of one."""
        self._touch()
        await self._fresh_members()
        rules.require_member(self.members, user_id)
        original = await self._editable(user_id, seq)
        if not _in_envelopes(original):
            raise WhisprError(
                Reason.INVALID,
                "only an end-to-end message is edited with envelopes",
                field="envelopes",
            )

    async def _editable(self, user_id: str, seq: int) -> Message:
        """The message ``seq`` if ``user_id`` may edit it: their own, not deleted, not system."""
        original = await self._message(seq)
        if original.sender_id != user_id:
            raise WhisprError(Reason.FORBIDDEN, "only the sender may edit a message")
        if original.deleted or original.kind == "system":
            raise WhisprError(Reason.INVALID, "this message cannot be edited")
        return original

    async def delete(self, user_id: str, seq: int) -> Message:
        """Delete for everyone: the sender, or the owner and admins of a group."""
        self._touch()
        await self._fresh_members()
        rules.require_member(self.members, user_id)
        original = await self._message(seq)
        if original.sender_id != user_id:
            permissions.require(
                self._conversation(), self.members, user_id, permissions.Right.DELETE_ANY
            )
        if original.kind == "system":
            raise WhisprError(Reason.INVALID, "system messages cannot be deleted")
        if original.deleted:
            return original
        deleted = await self.deps.store.delete_message(self.conversation_id, seq)
        self._changed(deleted)
        self._publish("message_deleted", {"seq": seq, "deleted_by": user_id})
        return deleted

    async def react(self, user_id: str, seq: int, emoji: str, *, add: bool) -> Message:
        """Add or remove one emoji reaction (one per user per emoji; idempotent)."""
        self._touch()
        await self._fresh_members()
        rules.require_member(self.members, user_id)
        rules.check_emoji(emoji)
        original = await self._message(seq)
        if original.deleted:
            raise WhisprError(Reason.INVALID, "cannot react to a deleted message")
        store = self.deps.store
        if add:
            updated = await store.add_reaction(self.conversation_id, seq, user_id, emoji)
        else:
            updated = await store.remove_reaction(self.conversation_id, seq, user_id, emoji)
        self._changed(updated)
        self._publish("reaction_changed", {"seq": seq, "reactions": updated.reactions})
        return updated

    async def pin(self, user_id: str, seq: int, *, pinned: bool) -> Message:
        """Pin or unpin: both members of a direct conversation, owner and admins of a group."""
        self._touch()
        await self._fresh_members()
        permissions.require(self._conversation(), self.members, user_id, permissions.Right.PIN)
        original = await self._message(seq)
        if original.deleted:
            raise WhisprError(Reason.INVALID, "cannot pin a deleted message")
        updated = await self.deps.store.set_pinned(self.conversation_id, seq, pinned)
        self._changed(updated)
        self._publish("message_pinned", {"seq": seq, "pinned": pinned, "by": user_id})
        return updated

    async def add_members(
        self, user_id: str, new_user_ids: Sequence[str], *, trusted: bool = False
    ) -> list[Member]:
        """Add members to a group (owner and admins); users already in are skipped.

        ``trusted``: ``user_id`` names a sibling service keeping the group in
        sync (``service:<name>``), which needs no role; the group rules hold.
        """
        self._touch()
        await self._fresh_members()
        conversation = self._conversation()
        if trusted:
            rules.require_group(conversation)
        else:
            permissions.require(conversation, self.members, user_id, permissions.Right.ADD_MEMBERS)
        rules.check_user_ids(new_user_ids)
        fresh = [u for u in dict.fromkeys(new_user_ids) if u and u not in self.members]
        if len(self.members) + len(fresh) > rules.MAX_GROUP_MEMBERS:
            raise WhisprError(
                Reason.INVALID, f"a group has at most {rules.MAX_GROUP_MEMBERS} members"
            )
        if not fresh:
            return []
        now = self.deps.clock()
        added = [
            Member(conversation_id=self.conversation_id, user_id=u, role="member", joined_at=now)
            for u in fresh
        ]
        await self.deps.store.add_members(added)
        for member in added:
            self.members[member.user_id] = member
        await self._reread_after_own_change()
        for member in added:
            self.deps.membership_changed(
                MembershipChange(
                    conversation_id=self.conversation_id,
                    user_id=member.user_id,
                    change="added",
                    by=user_id,
                    role=member.role,
                )
            )
        self._publish("member_added", {"members": added, "by": user_id})
        await self._append(
            SYSTEM_SENDER,
            _system_draft("member_added", {"by": user_id, "user_ids": fresh}, system_client_id()),
        )
        return added

    async def remove_member(self, user_id: str, target_id: str, *, trusted: bool = False) -> None:
        """Leave (anyone), or remove someone (the owner anyone, admins plain members).

        ``trusted``: a sibling service removes ``target_id`` (no role needed).
        """
        self._touch()
        await self._fresh_members()
        conversation = self._conversation()
        actor_member = None if trusted else rules.require_member(self.members, user_id)
        rules.check_user_ids([target_id], "user_id")
        target = self.members.get(target_id)
        if target is None:
            raise WhisprError(Reason.NOT_FOUND, f"{target_id} is not a member")
        if actor_member is not None:
            right = (
                permissions.Right.LEAVE
                if target_id == user_id
                else permissions.removal_right(target.role)
            )
            permissions.require(conversation, self.members, user_id, right)
        elif conversation.kind == "direct":
            raise WhisprError(Reason.FORBIDDEN, "nobody leaves a direct conversation")
        await self.deps.store.remove_member(self.conversation_id, target_id)
        self.members.pop(target_id, None)
        await self._reread_after_own_change()
        self.deps.membership_changed(
            MembershipChange(
                conversation_id=self.conversation_id,
                user_id=target_id,
                change="left" if target_id == user_id else "removed",
                by=user_id,
                role=None,
            )
        )
        self._publish("member_removed", {"user_id": target_id, "by": user_id})
        event = "member_left" if target_id == user_id else "member_removed"
        await self._append(
            SYSTEM_SENDER,
            _system_draft(event, {"by": user_id, "user_id": target_id}, system_client_id()),
        )
        if target.role == "owner" and self.members:
            await self._hand_over_ownership()

    async def set_notifications(
        self, user_id: str, *, muted_until: float | None, notifications: str | None
    ) -> Member:
        """A member's own mute and notification settings."""
        self._touch()
        await self._fresh_members()
        rules.require_member(self.members, user_id)
        if notifications is not None and notifications not in ("all", "mentions", "none"):
            raise WhisprError(
                Reason.INVALID,
                "notifications must be 'all', 'mentions' or 'none'",
                field="notifications",
            )
        changes: dict[str, Any] = {"muted_until": muted_until}
        if notifications is not None:
            changes["notifications"] = notifications
        updated = await self.deps.store.update_member(self.conversation_id, user_id, **changes)
        self.members[user_id] = updated
        return updated

    async def update_member_settings(self, user_id: str, change: SettingsChange) -> Member:
        """A member's own settings (``actors/member_settings.py``): any member, their own only.

        The actor's member list takes the new record at once, so the next push decision here
        honours it; another node's actor reads it within ``members_max_age_s``.
        """
        self._touch()
        await self._fresh_members()
        rules.require_member(self.members, user_id)
        changes = change.store_changes()
        updated = await self.deps.store.update_member(self.conversation_id, user_id, **changes)
        self.members[user_id] = updated
        return updated

    # -- for the operations run on this actor from beside it (actors/admin.py) -----------

    async def current_members(self) -> dict[str, Member]:
        """The member list (read again when older than ``members_max_age_s``); the actor is
        active."""
        self._touch()
        return await self._fresh_members()

    def current_conversation(self) -> Conversation:
        """The conversation as this actor last read or changed it."""
        return self._conversation()

    def role_changed(self, member: Member, by: str) -> None:
        """``member``'s new role, stored already: kept here, reported as a membership
        change, and told to every follower (``member_updated``)."""
        self.members[member.user_id] = member
        self.deps.membership_changed(
            MembershipChange(
                conversation_id=self.conversation_id,
                user_id=member.user_id,
                change="role_changed",
                by=by,
                role=member.role,
            )
        )
        self._publish("member_updated", {"member": member, "by": by})

    def publish(self, event: str, payload: dict[str, Any]) -> None:
        """Tell every follower of the conversation (this actor's state already changed)."""
        self._publish(event, payload)

    async def post_event(self, event: str, details: dict[str, Any]) -> Message:
        """A system message in the conversation's order, awaited until durable."""
        return await self._append(SYSTEM_SENDER, _system_draft(event, details, system_client_id()))

    async def hand_over_ownership(self) -> None:
        """The owner is gone: the oldest admin, else the oldest member, owns the group."""
        await self._hand_over_ownership()

    # -- the engine -----------------------------------------------------------------------

    # Sends are pipelined. A send taken from the mailbox joins ``_queued``
    # and its reply is deferred; the actor has at most one chunk of sends
    # committing (``_committing``), handed to the batcher as a unit so that it
    # lands in one batch, atomic and in order. The store gives the seqs
    # (``Unsequenced``: next seq under the conversation's row lock, a stored
    # client id skipped without using one), so a chunk cannot leave a gap
    # whatever else happens: a duplicate takes no seq, a failed batch writes
    # nothing, another node's actor waits for the lock instead of losing a
    # race. When the chunk is done each caller is answered (the message, the
    # original for a duplicate, or ``unavailable``), and what queued
    # meanwhile goes as the next chunk. Acknowledged means committed.

    def _enqueue(
        self,
        sender_id: str,
        draft: Draft,
        reply: pykka.Future[Any] | None,
        *,
        trusted: bool = False,
        member_version: int | None = None,
    ) -> None:
        key = (sender_id, draft.client_id)
        entry = self._pending.get(key)
        if entry is not None:  # the same send again while it is on its way: one message
            entry.replies.append(reply)
            return
        message = Unsequenced(
            conversation_id=self.conversation_id,
            id=new_id(),
            client_id=draft.client_id,
            sender_id=sender_id,
            kind=draft.kind,
            content=draft.content,
            attachments=draft.attachments,
            reply_to=draft.reply_to,
            created_at=self.deps.clock(),
            metadata=draft.metadata,
            trusted_sender=trusted,
            member_version=member_version,
        )
        entry = _Pending(key, message, reply, self._send_span(message), draft.envelopes)
        self._pending[key] = entry
        self._queued.append(entry)
        # The chunk goes when the actor has handled what is in its mailbox
        # (``on_drained``): the sends taken in one drain (senders answered
        # together send again together) share a chunk.

    def _send_span(self, message: Unsequenced) -> Span | None:
        """``conversation send`` for a send asked under a sampled span, else None."""
        parent = self._call_trace
        if parent is None:
            return None
        return TRACER.start_span(
            "conversation send",
            context=parent,
            attributes={
                "whispr.conversation_id": self.conversation_id,
                "whispr.client_id": message.client_id,
            },
        )

    async def _append(self, sender_id: str, draft: Draft) -> Message:
        """Send a system message from inside a handler and wait for the commit."""
        reply: AsyncioFuture[Message] = AsyncioFuture()
        self._enqueue(sender_id, draft, reply, trusted=True)
        if self._committing is None:
            self._submit()  # no drain follows while this handler waits
        return await reply

    def on_drained(self) -> None:
        if self._queued and self._committing is None and not self._exited:
            self._submit()

    def _submit(self) -> None:
        queued = self._queued
        limit = self.deps.commit.max_batch  # a chunk fits in one batch
        if len(queued) <= limit:
            chunk, self._queued = queued, []
        else:
            chunk, self._queued = queued[:limit], queued[limit:]
        self._committing = chunk
        for entry in chunk:
            if entry.span is not None:
                entry.commit_span = TRACER.start_span(
                    "group commit",
                    context=span_context(entry.span),
                    attributes={"whispr.chunk_size": len(chunk)},
                )
        try:
            future = self.deps.commit.submit_many([entry.message for entry in chunk])
        except Exception as exc:  # the batcher is closed: the node is stopping
            self._committing = None
            self._fail(chunk, exc)
            return
        future.add_done_callback(self._committed)

    def _committed(self, future: asyncio.Future[list[InsertResult]]) -> None:
        if self._exited:  # every deferred reply was answered (ActorDeadError) at exit
            for entry in self._committing or ():
                entry.traced_end(pykka.ActorDeadError("the conversation actor exited"))
            return
        chunk, self._committing = self._committing, None
        assert chunk is not None
        error = asyncio.CancelledError() if future.cancelled() else future.exception()
        if error is not None:
            self._fail(chunk, error)
        else:
            self._settle(chunk, future.result())
        if self._queued:
            self._submit()

    def _settle(self, chunk: list[_Pending], results: Sequence[InsertResult]) -> None:
        # The senders are answered first, then the messages published: an answer wakes its
        # sender on the next loop turn and a broadcast is written at its end, so a sender
        # on this node gets both in one write (see ConnectionActor.send).
        pending = self._pending
        inserted: list[tuple[Message, _Pending]] = []
        traced: dict[str, _Pending] = {}
        for entry, result in zip(chunk, results, strict=True):
            del pending[entry.key]
            message = result.message
            if entry.commit_span is not None:
                entry.commit_span.set_attribute("whispr.status", result.status)
                entry.commit_span.end()
                entry.commit_span = None
                if result.status == "inserted":
                    traced[message.id] = entry
            if result.status == "inserted":
                if message.seq > self.last_seq:
                    self.last_seq = message.seq
                self._remember(message)
                inserted.append((message, entry))
            elif result.status == "duplicate":
                self._remember(message)
            else:
                if result.status in ("not_member", "members_changed"):
                    self._refresh_members_soon()  # changed on another node, not heard here
                error = _refusal(result)
                for reply in entry.replies:
                    self.reply_error(reply, error)
                entry.traced_end(error)
                continue
            for reply in entry.replies:
                self.reply(reply, message)
            if entry.span is not None and message.id not in traced:
                entry.traced_end()  # a duplicate: nothing published
        self._announce_expiries([message for message, _ in inserted])
        on_new_message = self.deps.on_new_message
        for message, sent in inserted:
            sampled = traced.get(message.id) if traced else None
            if sampled is None:
                self._publish("new_message", _new_message(message, sent.envelopes))
            else:
                self._publish_traced(sampled, message)
            if on_new_message is not None:
                on_new_message(self._conversation(), self.members, message)

    def _announce_expiries(self, inserted: Sequence[Message]) -> None:
        """Tell every node's scheduler the earliest expiry of these messages, if any: the
        store has their expiry rows already (written with them), this only wakes a timer."""
        due = [
            at
            for m in inserted
            if m.metadata and isinstance(at := m.metadata.get(scheduling.EXPIRES_AT), float | int)
        ]
        if due:
            self.deps.broker.publish(scheduling.SCHEDULER_TOPIC, scheduling.timer_event(min(due)))

    def _publish_traced(self, entry: _Pending, message: Message) -> None:
        """Publish a sampled message under a ``publish`` span whose context the event carries."""
        assert entry.span is not None
        span = TRACER.start_span(
            f"publish {self.topic}",
            context=span_context(entry.span),
            kind=SpanKind.PRODUCER,
            attributes={"whispr.seq": message.seq},
        )
        try:
            self._publish("new_message", _new_message(message, entry.envelopes), traceparent(span))
        finally:
            span.end()
            entry.traced_end()

    def _fail(self, chunk: list[_Pending], exc: BaseException) -> None:
        # Nothing of a failed batch was written: every caller may retry.
        if isinstance(exc, WhisprError):
            error = exc
        else:
            error = WhisprError(Reason.UNAVAILABLE, "the message store is unavailable")
            error.__cause__ = exc
        for entry in chunk:
            self._pending.pop(entry.key, None)
            for reply in entry.replies:
                self.reply_error(reply, error)
            entry.traced_end(error)

    async def _message(self, seq: int) -> Message:
        cached = self._recent.get(seq)
        if cached is not None:
            return cached
        rules.check_position(seq, "seq")
        message = await self.deps.store.get_message(self.conversation_id, seq)
        if message is None:
            raise WhisprError(Reason.NOT_FOUND, f"no message {seq} in this conversation")
        return message

    async def _hand_over_ownership(self) -> None:
        ranked = sorted(
            self.members.values(),
            key=lambda m: (m.role != "admin", m.joined_at, m.user_id),
        )
        heir = ranked[0]
        updated = await self.deps.store.update_member(
            self.conversation_id, heir.user_id, role="owner"
        )
        self.role_changed(updated, SYSTEM_SENDER)
        await self._append(
            SYSTEM_SENDER,
            _system_draft(
                "ownership_transferred",
                {"by": SYSTEM_SENDER, "user_id": heir.user_id},
                system_client_id(),
            ),
        )

    def _remember(self, message: Message) -> None:
        recent = self._recent
        recent[message.seq] = message
        recent.move_to_end(message.seq)
        self._by_client[(message.sender_id, message.client_id)] = message.seq
        while len(recent) > self.deps.cache_size:
            _, old = recent.popitem(last=False)
            self._by_client.pop((old.sender_id, old.client_id), None)

    def _changed(self, message: Message) -> None:
        if message.seq in self._recent:
            self._recent[message.seq] = message

    def _publish(self, event: str, payload: dict[str, Any], trace: str = "") -> None:
        self._publishing = True
        try:
            self.deps.broker.publish(self.topic, encode_event(event, payload, trace))
        finally:
            self._publishing = False

    def _conversation(self) -> Conversation:
        assert self.conversation is not None, "used before on_start"
        return self.conversation

    # -- other nodes' changes -----------------------------------------------------------

    def _on_broker_event(self, _topic: str, data: bytes) -> None:
        if self._publishing:
            return  # this actor's own event: its state changed before it published
        event = decode_event(data)
        seq = event.seq
        if seq is not None:
            # Sent by another node's actor for this conversation: the last seq moves on here
            # too, so that read cursors moved through this node are not held back.
            if seq > self.last_seq:
                self.last_seq = seq
            return
        if event.name.startswith(_REMOTE_PREFIXES) and self.actor_ref.is_alive():
            self.actor_ref.tell(_Remote(event.name))
        elif event.name == "message_expired" and self.actor_ref.is_alive():
            self.actor_ref.tell(_Expired(int(payload_of(event)["seq"])))

    def _forget(self, expired: _Expired) -> None:
        """A message expired (whichever node's scheduler did it): its content leaves the
        cache; a retried send of its client id now finds the store's stub."""
        old = self._recent.pop(expired.seq, None)
        if old is not None:
            self._by_client.pop((old.sender_id, old.client_id), None)

    async def _apply_remote(self, _event: _Remote) -> None:
        # Reload from the store rather than trusting the payload: the store is
        # the source of truth and a reload is idempotent, whoever made the change.
        await self._reload_members()

    def _refresh_members_soon(self) -> None:
        """Read the member list again after the messages already in the mailbox."""
        self._members_at = time.monotonic()  # one refresh at a time
        if self.actor_ref.is_alive():
            self.actor_ref.tell(_Remote("refresh"))

    # -- passivation ------------------------------------------------------------------------

    def _touch(self) -> None:
        self._last_active = time.monotonic()

    def _arm_idle_timer(self, delay: float) -> None:
        ref = self.actor_ref

        def check() -> None:
            if ref.is_alive():
                ref.tell(_IDLE_CHECK)

        self._idle_timer = asyncio.get_running_loop().call_later(delay, check)

    def _idle_check(self) -> None:
        idle_for = time.monotonic() - self._last_active
        remaining = self.deps.idle_timeout_s - idle_for
        if remaining > 0:
            self._arm_idle_timer(remaining)
            return
        self._idle_timer = None
        self.stop()


def _in_envelopes(message: Message) -> bool:
    """Sent end to end with its text in per-device envelopes (no content of its own)."""
    return message.metadata.get("e2e") is True and not message.content


def _system_draft(event: str, details: dict[str, Any], client_id: str) -> Draft:
    return Draft(client_id=client_id, kind="system", metadata={"event": event, **details})


def _refusal(result: InsertResult) -> WhisprError:
    """The answer to a send the store did not write: its own refusal, or try again."""
    if result.status == "invalid":  # this message alone; the rest of its batch was written
        details = {} if result.field is None else {"field": result.field}
        return WhisprError(Reason.INVALID, result.detail, **details)
    if result.status == "not_member":
        return WhisprError(Reason.NOT_MEMBER, "you are not a member of this conversation")
    if result.status == "members_changed":
        return _members_changed()
    # The store sequences these sends: a conflict means something is wrong.
    return WhisprError(Reason.UNAVAILABLE, "could not order the message; try again")
