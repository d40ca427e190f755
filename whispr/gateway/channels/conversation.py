"""``conversation:<id>``: a member's live view of one conversation, and its writes.

Joining checks membership (one ask of the conversation's actor, which also says where the
conversation's stream is), then follows the conversation through an
:class:`~actors.stream.ConversationStream`: subscribed before anything is read, so a join with
``last_seq`` gets what it missed from the store, in order, then live events without a
duplicate or a hole. The first catch-up page is read before the reply (which says where the
client will be once it arrives) and sent right after it; presence is tracked last.

Its pushes are the conversation's writes and reads. ``send_message`` pushes are pipelined by
the connection (:meth:`ConversationChannel.pipelined`): each starts while the previous one
waits for its commit, and they are still answered in order.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Literal

import msgspec

from actors import rules
from actors.conversation import Draft
from actors.e2e.delivery import live_frame
from actors.e2e.model import Envelope
from actors.events import BrokerEvent, encode_event
from actors.model import Message, MessageKind
from actors.rules import MAX_PAGE
from actors.search import MessageFilters
from actors.stream import ConversationStream, StreamItem
from whispr.gateway.channels import member_state, search
from whispr.gateway.channels.base import (
    Channel,
    ChannelHost,
    EventTable,
    Payload,
    Reply,
    decode_payload,
)
from whispr.gateway.channels.typing import TypingIndicator
from whispr.gateway.fanout import broadcast_frame
from whispr.protocol import CloseCode
from whispr.protocol.presence import PRESENCE_STATE

__all__ = [
    "ConversationChannel",
    "ConversationJoin",
    "DeleteMessage",
    "EditMessage",
    "History",
    "MarkCursor",
    "PinMessage",
    "React",
    "SendMessage",
    "Typing",
]


class ConversationJoin(Payload):
    """``phx_join`` of ``conversation:<id>``: ``last_seq`` asks for what was missed since;
    ``state`` for the member's receipts, pins and settings in the reply (``member_state.py``)."""

    last_seq: int | None = msgspec.field(default=None)
    state: bool = False


class SendMessage(Draft, frozen=True, forbid_unknown_fields=True):
    """``send_message``: reply ``{"id", "seq", "created_at"}`` once durable.

    The conversation actor's :class:`~actors.conversation.Draft` itself, refusing unknown
    fields and the ``system`` kind (only the server posts those). ``client_id`` makes the
    send idempotent: a retry with the same id returns the original.
    """

    kind: Literal["text", "media"] = "text"


class EditMessage(Payload):
    """``edit_message``: one's own message, by seq.

    An end-to-end message (its text in envelopes) is edited with ``envelopes`` (one per
    device, as ``send_message``), ``blind_tokens`` and a ``client_id``, no ``content``: the
    edit is sent as an end-to-end message of its own (docs/e2e.md).
    """

    seq: int
    content: str = ""
    client_id: str = ""
    envelopes: tuple[Envelope, ...] = ()
    blind_tokens: tuple[bytes, ...] = ()


class DeleteMessage(Payload):
    """``delete_message``: ``for_everyone`` leaves a tombstone; otherwise hidden for oneself."""

    seq: int
    for_everyone: bool = True


class React(Payload):
    """``react``: add (or with ``remove`` true, take back) one emoji reaction."""

    seq: int
    emoji: str
    remove: bool = False


class PinMessage(Payload):
    """``pin``: pin or (``pinned`` false) unpin a message."""

    seq: int
    pinned: bool = True


class MarkCursor(Payload):
    """``mark_read`` / ``mark_delivered``: move the cursor forward to ``seq``."""

    seq: int


class Typing(Payload):
    """``typing_start`` / ``typing_stop``: no payload fields; broadcast as ``user_typing``."""


class History(Payload):
    """``history``: a page of messages, ascending, before or after a seq (at most 200);
    optionally only those of one ``sender_id``, of one ``kind``, or created from ``since``
    (included) to ``until`` (excluded), in seconds since the epoch."""

    before_seq: int | None = None
    after_seq: int | None = None
    limit: int = 50
    sender_id: str | None = None
    kind: MessageKind | None = None
    since: float | None = None
    until: float | None = None


_events: EventTable[ConversationChannel] = EventTable()


class ConversationChannel(Channel):
    """One member's channel on one conversation; see the module's docstring."""

    kind: ClassVar[str] = "conversation"
    table: ClassVar[EventTable[Any]] = _events

    def __init__(self, host: ChannelHost, topic: str, target: str, join_ref: str) -> None:
        super().__init__(host, topic, target, join_ref)
        self.stream: ConversationStream | None = None
        #: Where the client's catch-up starts (its ``last_seq``); None: no catch-up.
        self._since: int | None = None
        #: The first catch-up page, read by the join, sent after its reply.
        self._first_page: list[Message] | None = None
        self._presence_ref: str | None = None
        #: This device's typing indicator, ended by the server (channels/typing.py).
        self.typing_indicator = TypingIndicator(
            self._publish_typing, host.ctx.settings.typing_timeout_s
        )
        #: Set while this channel's own push removes its member (``leave``): the channel is
        #: then ended after that push's reply (whispr/gateway/channels/admin.py), not at once.
        self.removal_pending = False

    # -- join -----------------------------------------------------------------------------

    async def join(self, payload: dict[str, Any] | bytes) -> dict[str, Any]:
        params = decode_payload(ConversationJoin, payload)
        since = params.last_seq
        if since is not None:
            rules.check_position(since, "last_seq")
        host = self.host
        messaging = host.ctx.messaging
        conversation, head = await messaging.conversation_at(host.user_id, self.target)
        stream = messaging.stream(
            self.target,
            viewer_id=host.user_id,
            deliver=self._deliver,
            on_overflow=self._overflow,
            on_revoked=self._revoked,
            device=(host.user_id, host.identity.device_id),
        )
        self.stream = stream
        # Subscribed (events held) before catch-up reads the store: nothing falls in between.
        await stream.subscribe()
        reply = {"conversation": msgspec.to_builtins(conversation)}
        if params.state:
            reply["state"] = await member_state.join_state(self)
        if since is None:
            # Where the channel starts: live events up to here are already history. A message
            # committed after ``head`` was read and published before the subscription shows as
            # a gap by the next one, and is read from the store then.
            stream.start_at(head)
            return {**reply, "last_seq": head}
        # Catching up: the first page is read now and sent right after the reply.
        page = list(await stream.read_page(since))
        self._since, self._first_page = since, page
        if len(page) < MAX_PAGE:  # all of it: where the client will be once it arrives
            return {**reply, "last_seq": page[-1].seq if page else since}
        return {**reply, "last_seq": max(head, page[-1].seq)}

    async def after_join(self) -> None:
        host, stream = self.host, self.stream
        assert stream is not None, "after_join follows a successful join"
        if self._since is not None:
            page, self._first_page = self._first_page, None
            async for message in stream.replay(self._since, first_page=page):
                await host.send_waiting(self._stored(message))
        ctx = host.ctx
        state = await ctx.presence.state(self.topic)
        host.send(host.proto.push(self.topic, PRESENCE_STATE, state, join_ref=self.join_ref))
        stream.go_live()
        if not host.is_current(self):
            return
        meta = {"device": host.identity.device_id, "online_at": time.time()}
        ref = await ctx.presence.track(self.topic, host.user_id, meta)
        if host.is_current(self):
            self._presence_ref = ref
        else:  # left while being tracked
            await ctx.presence.untrack(self.topic, host.user_id, ref)

    # -- events out -----------------------------------------------------------------------

    def _deliver(self, item: StreamItem) -> None:
        if isinstance(item, Message):  # read from the store to fill a gap
            self.host.send(self._stored(item))
        else:
            self.handle_out(item)

    def _stored(self, message: Message) -> bytes | None:
        """A message read from the store, as the ``new_message`` push a live one would be."""
        frame = {"message": message}
        return self.host.proto.push(self.topic, "new_message", frame, join_ref=self.join_ref)

    def _overflow(self) -> None:
        # Too far behind to be served live in order (too many events held, or a gap the
        # store could not fill): the client reconnects and catches up from its last seq.
        self.host.close(CloseCode.TRY_AGAIN_LATER, "behind; rejoin with last_seq")

    def _revoked(self) -> None:
        # No longer a member, and the event saying so was lost: the channel ends for good.
        host = self.host
        host.send(host.proto.close_channel(self.topic, join_ref=self.join_ref))
        host.end_channel(self)

    def handle_out(self, event: BrokerEvent) -> None:
        host = self.host
        if event.name == "user_typing" and event.user_id == host.user_id:
            return  # not echoed to the typer
        if event.envelopes:  # end to end: this device's own envelope only
            frame = live_frame(event, host.user_id, host.identity.device_id)
            host.send(host.proto.push(self.topic, "new_message", frame, join_ref=self.join_ref))
            return
        if event.name == "member_removed" and event.user_id == host.user_id:
            # Removed from the conversation: the channel ends for good (no rejoin).
            host.send(broadcast_frame(self.topic, event))
            if not self.removal_pending:
                self.close_for_good()
            return
        super().handle_out(event)

    def close_for_good(self) -> None:
        """``phx_close`` and the end of this channel (no rejoin follows); once only."""
        host = self.host
        if host.is_current(self):
            host.send(host.proto.close_channel(self.topic, join_ref=self.join_ref))
            host.end_channel(self)

    # -- end ------------------------------------------------------------------------------

    def drop(self) -> None:
        super().drop()
        self.typing_indicator.end()
        if self.stream is not None:
            self.stream.close()

    async def leave(self) -> None:
        self.drop()
        if self._presence_ref is not None:
            ref, self._presence_ref = self._presence_ref, None
            await self.host.ctx.presence.untrack(self.topic, self.host.user_id, ref)

    # -- events in ------------------------------------------------------------------------

    def pipelined(self, event: str) -> bool:
        return event == "send_message"

    @_events.on("send_message", SendMessage)
    async def send_message(self, draft: SendMessage, _event: str) -> Reply:
        ctx = self.host.ctx
        host = self.host
        message = await ctx.messaging.send(
            host.user_id, self.target, draft, device_id=host.identity.device_id
        )
        return {"id": message.id, "seq": message.seq, "created_at": message.created_at}

    @_events.on("edit_message", EditMessage)
    async def edit_message(self, p: EditMessage, _event: str) -> Reply:
        host = self.host
        messaging = host.ctx.messaging
        if p.client_id or p.envelopes or p.blind_tokens:  # end to end: the edit is a message
            draft = Draft(
                client_id=p.client_id,
                content=p.content,
                envelopes=p.envelopes,
                blind_tokens=p.blind_tokens,
            )
            edit = await messaging.edit_e2e(
                host.user_id, self.target, p.seq, draft, device_id=host.identity.device_id
            )
            return {"seq": p.seq, "edited_at": edit.created_at, "id": edit.id, "edit_seq": edit.seq}
        message = await messaging.edit(host.user_id, self.target, p.seq, p.content)
        return {"seq": message.seq, "edited_at": message.edited_at}

    @_events.on("delete_message", DeleteMessage)
    async def delete_message(self, p: DeleteMessage, _event: str) -> Reply:
        messaging = self.host.ctx.messaging
        if p.for_everyone:
            await messaging.delete(self.host.user_id, self.target, p.seq)
        else:
            await messaging.hide(self.host.user_id, self.target, p.seq)
        return {"seq": p.seq, "for_everyone": p.for_everyone}

    @_events.on("react", React)
    async def react(self, p: React, _event: str) -> Reply:
        message = await self.host.ctx.messaging.react(
            self.host.user_id, self.target, p.seq, p.emoji, add=not p.remove
        )
        return {"seq": message.seq, "reactions": msgspec.to_builtins(message.reactions)}

    @_events.on("pin", PinMessage)
    async def pin(self, p: PinMessage, _event: str) -> Reply:
        message = await self.host.ctx.messaging.pin(
            self.host.user_id, self.target, p.seq, pinned=p.pinned
        )
        return {"seq": message.seq, "pinned": message.pinned}

    @_events.on("mark_read", MarkCursor)
    @_events.on("mark_delivered", MarkCursor)
    async def mark(self, p: MarkCursor, event: str) -> Reply:
        host = self.host
        messaging = host.ctx.messaging
        if event == "mark_read":
            cursor = await messaging.mark_read(host.user_id, self.target, p.seq)
        else:
            cursor = await messaging.mark_delivered(
                host.user_id, host.identity.device_id, self.target, p.seq
            )
        return {"seq": cursor}

    @_events.on("typing_start", Typing)
    @_events.on("typing_stop", Typing)
    async def typing(self, _p: Typing, event: str) -> Reply:
        if event == "typing_start":
            self.typing_indicator.start()
        else:
            self.typing_indicator.stop()
        return {}

    def _publish_typing(self, typing: bool) -> None:
        host = self.host
        payload = {"user_id": host.user_id, "device_id": host.identity.device_id, "typing": typing}
        host.ctx.broker.publish(self.topic, encode_event("user_typing", payload))

    @_events.on("history", History)
    async def history(self, p: History, _event: str) -> Reply:
        messages = await self.host.ctx.messaging.history(
            self.host.user_id,
            self.target,
            before_seq=p.before_seq,
            after_seq=p.after_seq,
            limit=p.limit,
            filters=MessageFilters(
                sender_id=p.sender_id, kind=p.kind, since=p.since, until=p.until
            ),
        )
        return {"messages": msgspec.to_builtins(messages)}


# A member's own state (settings, receipts, pins, threads): whispr/gateway/channels/member_state.py
member_state.register(_events)
# Full-text search of this conversation: whispr/gateway/channels/search.py
search.register_conversation(_events)
