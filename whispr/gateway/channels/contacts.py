"""The presence of a user's contacts on their ``user:<id>`` channel, and their own.

A ``user:`` channel is one device of its user in user presence (:mod:`whispr.user_presence`):
online from its join, then as ``update_presence`` says, gone when the channel ends. It also
shows the user their contacts' presence, as Phoenix Presence payloads (so phoenix.js's
``Presence`` class can track it on the channel):

- ``presence_state`` once after the join: ``{user_id: {"metas": [meta]}}`` for each contact
  whose presence is known (one meta per contact, not per device);
- ``presence_diff`` at each change of a contact's status: the old meta leaves, the new one
  joins (``{"joins": {id: {"metas": [new]}}, "leaves": {id: {"metas": [old]}}}``).

A meta is ``{"status": "online" | "away" | "offline", "last_seen": seconds | null,
"phx_ref"}``; ``last_seen`` is null unless the contact is offline and shows it.

Contacts are the users sharing a conversation with the user when the channel joins (at most
:data:`MAX_CONTACTS`), plus the members of conversations added while it is joined. The
channel subscribes to each contact's internal ``presence:<id>`` topic, so a contact's change
costs one publish however many conversations they are in.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import Any, Final, Literal

import msgspec
import structlog

from actors.broker import Subscription
from actors.errors import Reason, WhisprError
from actors.events import decode_event
from whispr.gateway.channels.base import Channel, ChannelHost, Payload, Reply
from whispr.protocol.presence import PRESENCE_DIFF, PRESENCE_STATE, make_ref
from whispr.user_presence import UserMeta, client_meta, presence_topic

__all__ = ["MAX_CONTACTS", "ContactPresence", "UpdatePresence"]

log = structlog.get_logger("whispr.gateway")

#: Contacts whose presence one ``user:`` channel follows.
MAX_CONTACTS: Final = 1000
#: Subscriptions made at once when a channel joins.
_SUBSCRIBE_CONCURRENCY: Final = 100


class UpdatePresence(Payload):
    """``update_presence`` on ``user:<id>``: this device's status (``away`` when idle,
    ``invisible`` to appear offline, ``online`` again), and/or the user's privacy setting."""

    status: Literal["online", "away", "invisible"] | None = None
    hide_last_seen: bool | None = None


class _Meta(msgspec.Struct):
    metas: list[UserMeta]


class _Diff(msgspec.Struct):
    joins: dict[str, _Meta]
    leaves: dict[str, _Meta]


_decode_diff = msgspec.json.Decoder(_Diff).decode


class ContactPresence:
    """One ``user:`` channel's part in user presence; see the module's docstring."""

    def __init__(self, channel: Channel) -> None:
        #: The channel, which holds this: weakly, so that the pair is freed by reference
        #: counting once the channel is gone, not left a cycle for the collector
        #: (whispr/gc_policy.py makes its full collections rare).
        self._channel = weakref.ref(channel)
        self.host: ChannelHost = channel.host
        self.topic = channel.topic
        host = self.host
        self.device = f"{host.identity.device_id}#{make_ref()}"
        self.status: Literal["online", "away", "invisible"] = "online"
        self.hide_last_seen = False
        #: Contact -> the ref of the meta the client was last sent (None: nothing sent yet).
        self._current: dict[str, str | None] = {}
        self._subscriptions: dict[str, Subscription] = {}
        #: Diffs received before ``presence_state`` was sent; None once it was.
        self._held: list[_Diff] | None = []
        self._tracked = False
        self._ended = False

    async def start(self) -> None:
        """Follow the contacts, send their state, then count this device in."""
        ctx = self.host.ctx
        if ctx.user_presence is None or ctx.accounts is None:
            return
        user_id = self.host.user_id
        self.hide_last_seen = bool(await ctx.accounts.hidden_last_seen([user_id]))
        contacts = await ctx.accounts.contacts(user_id, MAX_CONTACTS)
        await self._follow(contacts)
        metas = await ctx.user_presence.get(contacts)
        if self._ended:
            return
        state = {}
        for contact, meta in metas.items():
            self._current[contact] = meta.ref
            state[contact] = {"metas": [client_meta(meta)]}
        self.host.send(self.host.proto.push(self.topic, PRESENCE_STATE, state))
        held, self._held = self._held or [], None
        for diff in held:
            self._send(diff)
        self._tracked = True
        await ctx.user_presence.set_device(
            user_id, self.device, self.status, hide_last_seen=self.hide_last_seen
        )

    async def stop(self) -> None:
        """The channel ended: stop following, count this device out."""
        self._ended = True
        for subscription in self._subscriptions.values():
            subscription.cancel()
        self._subscriptions.clear()
        presence = self.host.ctx.user_presence
        if self._tracked and presence is not None:
            self._tracked = False
            await presence.remove_device(self.host.user_id, self.device)

    async def conversation_added(self, conversation_id: str) -> None:
        """Follow the members of a conversation the user was added to."""
        ctx = self.host.ctx
        if ctx.user_presence is None or self._ended:
            return
        _conversation, members, _seq = await ctx.messaging.describe(conversation_id)
        new = [
            m.user_id
            for m in members
            if m.user_id != self.host.user_id and m.user_id not in self._subscriptions
        ]
        room = MAX_CONTACTS - len(self._subscriptions)
        new = new[: max(room, 0)]
        if not new:
            return
        await self._follow(new)
        metas = await ctx.user_presence.get(new)
        for contact, meta in metas.items():
            if self._current.get(contact) is None:
                self._send(_Diff(joins={contact: _Meta([meta])}, leaves={}))

    async def update(self, p: UpdatePresence) -> Reply:
        """``update_presence``: change this device's status and/or the privacy setting."""
        ctx = self.host.ctx
        if ctx.user_presence is None or ctx.accounts is None:
            raise WhisprError(Reason.UNAVAILABLE, "user presence is not kept by this node")
        user_id = self.host.user_id
        if p.hide_last_seen is not None and p.hide_last_seen != self.hide_last_seen:
            await ctx.accounts.set_hide_last_seen(user_id, p.hide_last_seen)
            self.hide_last_seen = p.hide_last_seen
            await ctx.user_presence.set_hide_last_seen(user_id, p.hide_last_seen)
        if p.status is not None and p.status != self.status:
            self.status = p.status
            if self._tracked:
                await ctx.user_presence.set_device(
                    user_id, self.device, p.status, hide_last_seen=self.hide_last_seen
                )
        return {"status": self.status, "hide_last_seen": self.hide_last_seen}

    # -- contacts' changes ----------------------------------------------------------------

    async def _follow(self, contacts: Sequence[str]) -> None:
        broker = self.host.ctx.broker
        todo = [c for c in dict.fromkeys(contacts) if c not in self._subscriptions]
        for c in todo:
            self._current.setdefault(c, None)
        for start in range(0, len(todo), _SUBSCRIBE_CONCURRENCY):
            chunk = todo[start : start + _SUBSCRIBE_CONCURRENCY]
            subscriptions = await asyncio.gather(
                *(broker.subscribe(presence_topic(c), self._on_event) for c in chunk)
            )
            for contact, subscription in zip(chunk, subscriptions, strict=True):
                if self._ended:
                    subscription.cancel()
                else:
                    self._subscriptions[contact] = subscription

    def _on_event(self, _topic: str, data: bytes) -> None:
        event = decode_event(data)
        if event.name != PRESENCE_DIFF or self._ended:
            return
        try:
            diff = _decode_diff(event.payload)
        except msgspec.DecodeError:
            log.warning("user presence diff not understood")
            return
        if self._held is not None:
            self._held.append(diff)
        else:
            self._send(diff)

    def _send(self, diff: _Diff) -> None:
        """Send the part of ``diff`` that follows what the client was sent (older changes,
        already in the state it got, are dropped)."""
        joins: dict[str, Any] = {}
        leaves: dict[str, Any] = {}
        for contact, joined in diff.joins.items():
            if contact not in self._current or not joined.metas:
                continue
            new = joined.metas[0]
            left = diff.leaves.get(contact)
            old = left.metas[0] if left is not None and left.metas else None
            current = self._current[contact]
            if current is not None and (old is None or old.ref != current):
                continue  # a change from before what the client has
            self._current[contact] = new.ref
            joins[contact] = {"metas": [client_meta(new)]}
            if old is not None:
                leaves[contact] = {"metas": [client_meta(old)]}
        channel = self._channel()
        if joins and channel is not None and self.host.is_current(channel):
            payload = {"joins": joins, "leaves": leaves}
            self.host.send(self.host.proto.push(self.topic, PRESENCE_DIFF, payload))
