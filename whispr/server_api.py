"""The server API's operations: what backends do to users' live connections.

One class, :class:`ServerApi`, holds the rules (which topics and event names a backend may
publish on, what a revocation covers, how many users one presence query may ask about);
the gRPC servicer (:mod:`whispr.grpc.server_service`) only checks its arguments' shapes and
converts. Every refusal is a ``WhisprError`` from the one catalogue (``actors/errors.py``).

:func:`create_conversation` and :func:`system_event` are the rules of two operations of gRPC's
``MessagingService`` that the HTTP server API offers too, kept here so both call them.

Publishing and disconnecting go through the broker, so they reach the user's connections on
every node (:mod:`whispr.control` for disconnects); a revocation is stored first, so it
holds across restarts, then announced.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any, Final, Literal

from actors.broker import Broker
from actors.errors import Reason, WhisprError
from actors.events import encode_event, user_topic
from actors.ids import new_id
from actors.messaging import Messaging
from actors.model import Conversation, ConversationSummary, Member
from whispr import control
from whispr.accounts import AccountStore
from whispr.protocol.presence import PRESENCE_DIFF, PRESENCE_STATE
from whispr.revocations import REVOCATION_TTL_S, Revocation, RevocationKind
from whispr.user_presence import MAX_QUERY, UserMeta, UserPresence

__all__ = [
    "MAX_EVENT_NAME",
    "MAX_REASON_BYTES",
    "RESERVED_EVENTS",
    "ServerApi",
    "TopicKind",
    "create_conversation",
    "system_event",
]

TopicKind = Literal["notification", "user"]

#: Event names a backend may publish: short, lower case, no spaces.
_EVENT_NAME: Final = re.compile(r"[a-z0-9_.]{1,64}")
#: Names the server itself sends on ``user:`` and ``notification:`` topics.
RESERVED_EVENTS: Final = frozenset(
    {
        PRESENCE_STATE,
        PRESENCE_DIFF,
        "message_notice",
        "conversation_added",
        "conversation_removed",
        "read",
    }
)
#: The longest system event name (``member_added``, ``call_started``...).
MAX_EVENT_NAME: Final = 64
#: The longest close reason (a WebSocket close frame holds 123 bytes of reason).
MAX_REASON_BYTES: Final = 120
#: The close reason of connections whose token was revoked, unless the caller gives one.
REVOKED: Final = "token revoked"


def _user(user_id: str, name: str = "user_id") -> str:
    if not user_id or len(user_id) > 128:
        raise WhisprError(Reason.INVALID, f"{name} must be 1 to 128 characters", field=name)
    return user_id


def _reason(reason: str, default: str) -> str:
    reason = reason or default
    if len(reason.encode()) > MAX_REASON_BYTES:
        raise WhisprError(
            Reason.INVALID, f"reason must be at most {MAX_REASON_BYTES} bytes", field="reason"
        )
    return reason


class ServerApi:
    """The operations of ``whispr.server.v1.ServerApi``; see the module's docstring."""

    def __init__(
        self,
        messaging: Messaging,
        broker: Broker,
        accounts: AccountStore,
        presence: UserPresence,
    ) -> None:
        self.messaging = messaging
        self.broker = broker
        self.accounts = accounts
        self.user_presence = presence

    def publish(self, kind: TopicKind, user_id: str, event: str, payload: Any) -> str:
        """Publish ``event`` on the user's topic of ``kind``; return the topic."""
        _user(user_id)
        if not _EVENT_NAME.fullmatch(event) or event.startswith("phx_"):
            raise WhisprError(
                Reason.INVALID, "event must be 1 to 64 of [a-z0-9_.], not phx_*", field="event"
            )
        if event in RESERVED_EVENTS:
            raise WhisprError(
                Reason.INVALID, f"{event!r} is an event the server sends itself", field="event"
            )
        topic = user_topic(user_id) if kind == "user" else f"notification:{user_id}"
        self.broker.publish(topic, encode_event(event, payload))
        return topic

    def disconnect(self, user_id: str, device_id: str | None, reason: str) -> None:
        """Close the user's connections (one device's) on every node."""
        event = control.Disconnect(
            _user(user_id), device_id or None, _reason(reason, "disconnected")
        )
        self.broker.publish(control.CONTROL_TOPIC, control.encode(event))

    async def revoke(
        self,
        kind: RevocationKind,
        *,
        user_id: str = "",
        device_id: str = "",
        jti: str = "",
        expires_at: float = 0.0,
        reason: str = "",
    ) -> Revocation:
        """Store a revocation, then announce it to every node (which close what it covers)."""
        now = time.time()
        if kind == "jti":
            if not jti or len(jti) > 256:
                raise WhisprError(Reason.INVALID, "jti must be 1 to 256 characters", field="jti")
        else:
            _user(user_id)
            if kind == "device":
                _user(device_id, "device_id")
        revocation = Revocation(
            id=new_id(),
            kind=kind,
            user_id=user_id or None,
            device_id=(device_id or None) if kind == "device" else None,
            jti=jti if kind == "jti" else None,
            issued_before=now,
            at=now,
            expires_at=expires_at if kind == "jti" and expires_at > now else now + REVOCATION_TTL_S,
            reason=_reason(reason, REVOKED),
        )
        await self.accounts.add_revocation(revocation)
        self.broker.publish(control.CONTROL_TOPIC, control.encode(control.Revoked(revocation)))
        return revocation

    async def presence(self, user_ids: Sequence[str]) -> list[tuple[str, UserMeta | None]]:
        """Each distinct user asked, in order, with their meta (None: never seen)."""
        distinct = list(dict.fromkeys(user_ids))
        if len(distinct) > MAX_QUERY:
            raise WhisprError(
                Reason.INVALID, f"at most {MAX_QUERY} users per query", field="user_ids"
            )
        for user_id in distinct:
            _user(user_id, "user_ids")
        metas = await self.user_presence.get(distinct)
        return [(user_id, metas.get(user_id)) for user_id in distinct]

    async def conversations(
        self, user_id: str, *, limit: int, before: float | None, before_id: str | None
    ) -> list[ConversationSummary]:
        """A page of the user's conversations, most recently active first."""
        return await self.messaging.list_conversations(
            _user(user_id), limit=limit, before=before, before_id=before_id
        )


async def create_conversation(
    messaging: Messaging,
    creator: str,
    kind: str,
    member_ids: Sequence[str],
    title: str | None,
) -> tuple[Conversation, list[Member], int]:
    """A conversation a backend creates for ``creator``: the direct one with the one other
    user of ``member_ids``, or a group; with its members and last seq (gRPC's
    ``CreateConversation`` and its HTTP route)."""
    if kind == "direct":
        others = [u for u in dict.fromkeys(member_ids) if u != creator]
        if len(others) != 1:
            raise WhisprError(
                Reason.INVALID,
                "a direct conversation needs exactly one other user in member_ids",
                field="member_ids",
            )
        conversation = await messaging.direct(creator, others[0], field="member_ids")
    else:
        conversation = await messaging.create_group(creator, title, list(member_ids))
    return await messaging.describe(conversation.id)


def system_event(event: str) -> str:
    """A system message's event name, checked: letters, digits and ``_``, at most
    :data:`MAX_EVENT_NAME` (gRPC's ``SendSystemMessage`` and its HTTP route)."""
    if not event or len(event) > MAX_EVENT_NAME or not event.replace("_", "").isalnum():
        raise WhisprError(
            Reason.INVALID,
            f"event must be 1 to {MAX_EVENT_NAME} letters, digits or '_'",
            field="event",
        )
    return event
