"""``user:<id>``: a user's own channel: their conversation list, read sync, message notices.

Only its owner may join it. It carries the user topic's events (``conversation_added``,
``conversation_removed``, ``read`` from the user's other devices), and announces new messages
of the user's conversations as ``message_notice`` (metadata only: the conversation, seq,
sender, kind and time), so a client can show unread badges without joining every
conversation. It follows the user's :data:`NOTICE_CONVERSATIONS` most recent conversations
from the join on, and every conversation added afterwards.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final, Literal

import msgspec

from actors import rules
from actors.broker import Subscription
from actors.errors import Reason, WhisprError
from actors.events import BrokerEvent, conversation_topic, decode_event, payload_of
from actors.member_state import MemberStateReads
from whispr.gateway.channels import keys, search
from whispr.gateway.channels.base import Channel, ChannelHost, EventTable, Payload, Reply
from whispr.gateway.channels.contacts import ContactPresence, UpdatePresence

__all__ = ["NOTICE_CONVERSATIONS", "CreateConversation", "ListConversations", "UserChannel"]

#: Conversations whose new messages the ``user:`` channel announces (the most recent ones).
NOTICE_CONVERSATIONS: Final = 500


class CreateConversation(Payload):
    """``create_conversation`` on ``user:<id>``: a direct conversation with ``with_user``, or a
    group with ``title`` and ``members``."""

    kind: Literal["direct", "group"]
    with_user: str | None = None
    title: str | None = None
    members: tuple[str, ...] = ()


class ListConversations(Payload):
    """``list_conversations`` on ``user:<id>``: a page of the user's conversations, most
    recently active first; pass the last row's ``last_message_at`` and ``id`` for the next."""

    limit: int = 50
    before: float | None = None
    before_id: str | None = None


_events: EventTable[UserChannel] = EventTable()


class UserChannel(Channel):
    """One connection's channel on its own user topic; see the module's docstring."""

    kind: ClassVar[str] = "user"
    table: ClassVar[EventTable[Any]] = _events

    def __init__(self, host: ChannelHost, topic: str, target: str, join_ref: str) -> None:
        super().__init__(host, topic, target, join_ref)
        #: Conversation id -> the subscription announcing its new messages.
        self._notices: dict[str, Subscription] = {}
        #: This device in user presence, and the contacts' presence (contacts.py).
        self._contacts = ContactPresence(self)

    async def join(self, payload: dict[str, Any] | bytes) -> dict[str, Any]:
        self.require_own_topic()
        await self.subscribe(self.topic)
        state = await MemberStateReads(self.host.ctx.messaging.deps.store).unread(self.host.user_id)
        return {"unread": state.unread, "mentions": state.mentions}

    async def after_join(self) -> None:
        self.release()
        summaries = await self.host.ctx.messaging.list_conversations(
            self.host.user_id, limit=NOTICE_CONVERSATIONS
        )
        for summary in summaries:
            await self._watch(summary.conversation.id)
        await self._contacts.start()

    def handle_out(self, event: BrokerEvent) -> None:
        if event.conversation_id:  # the user's conversation list changed: follow it
            if event.name == "conversation_added":
                self.host.in_background(self._watch(event.conversation_id))
                self.host.in_background(self._contacts.conversation_added(event.conversation_id))
            elif event.name == "conversation_removed":
                subscription = self._notices.pop(event.conversation_id, None)
                if subscription is not None:
                    subscription.cancel()
        super().handle_out(event)

    def drop(self) -> None:
        super().drop()
        for subscription in self._notices.values():
            subscription.cancel()
        self._notices.clear()

    async def leave(self) -> None:
        await super().leave()
        await self._contacts.stop()

    async def _watch(self, conversation_id: str) -> None:
        """Announce new messages of one conversation on this channel (metadata only)."""
        host = self.host
        if conversation_id in self._notices or not host.is_current(self):
            return

        def on_event(_topic: str, data: bytes) -> None:
            event = decode_event(data)
            head = event.head
            if event.name == "message_expired" and host.is_current(self):
                # Every device of the member hears it, joined to the conversation or not.
                host.send(host.proto.push(self.topic, "message_expired", payload_of(event)))
                return
            if head is None or not host.is_current(self):
                return
            notice = {
                "conversation_id": head.conversation_id,
                "seq": head.seq,
                "sender_id": head.sender_id,
                "kind": head.kind,
                "created_at": head.created_at,
            }
            host.send(host.proto.push(self.topic, "message_notice", notice))

        topic = conversation_topic(conversation_id)
        subscription = await host.ctx.broker.subscribe(topic, on_event)
        if host.is_current(self) and conversation_id not in self._notices:
            self._notices[conversation_id] = subscription
        else:
            subscription.cancel()

    @_events.on("create_conversation", CreateConversation)
    async def create_conversation(self, p: CreateConversation, _event: str) -> Reply:
        messaging, user_id = self.host.ctx.messaging, self.host.user_id
        if p.with_user is not None:  # valid text even where it is not used (a group)
            rules.check_user_ids([p.with_user], "with_user")
        if p.kind == "direct":
            if not p.with_user:
                raise WhisprError(
                    Reason.INVALID, "a direct conversation needs with_user", field="with_user"
                )
            conversation = await messaging.direct(user_id, p.with_user, field="with_user")
        else:
            conversation = await messaging.create_group(
                user_id, p.title, p.members, field="members"
            )
        return {"conversation": msgspec.to_builtins(conversation)}

    @_events.on("list_conversations", ListConversations)
    async def list_conversations(self, p: ListConversations, _event: str) -> Reply:
        summaries = await self.host.ctx.messaging.list_conversations(
            self.host.user_id, limit=p.limit, before=p.before, before_id=p.before_id
        )
        return {"conversations": msgspec.to_builtins(summaries)}

    @_events.on("update_presence", UpdatePresence)
    async def update_presence(self, p: UpdatePresence, _event: str) -> Reply:
        return await self._contacts.update(p)


# Full-text search of all the user's conversations: whispr/gateway/channels/search.py
search.register_user(_events)
# The end-to-end key directory's events: whispr/gateway/channels/keys.py
keys.register(_events)
