"""``/api/v1/server``: the server API for backends, over HTTP.

The operations of gRPC's ``whispr.server.v1.ServerApi`` (publish to a user or notification
topic, disconnect, revoke tokens, presence) through the same
:class:`~whispr.server_api.ServerApi`, and those of ``MessagingService`` a backend needs most
(create a conversation, post a system message) through the same functions the gRPC servicer
calls. Callers present a service token of ``WHISPR_GRPC_TOKENS``, as on gRPC; a system message
names the caller as its ``service`` unless it says otherwise.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Router, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from actors.errors import Reason, WhisprError
from actors.model import Conversation, Member, Message
from whispr.http.context import HttpContext
from whispr.http.problems import problems
from whispr.revocations import RevocationKind
from whispr.server_api import ServerApi, TopicKind, create_conversation, system_event
from whispr.user_presence import UserMeta

__all__ = ["router"]

_PROBLEMS = problems(400, 401, 404, 409, 413, 503)


class Publish(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An event for a user's devices: on ``user:<id>`` or ``notification:<id>``."""

    topic: TopicKind
    user_id: str
    event: str
    payload: dict[str, Any] = {}


class Published(msgspec.Struct, kw_only=True):
    """Where the event was published."""

    topic: str


class Disconnect(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Close a user's connections (one device's when given), on every node."""

    user_id: str
    device_id: str | None = None
    reason: str = ""


class Revoke(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Revoke a user's tokens, a device's, or one token (``jti``)."""

    kind: RevocationKind
    user_id: str = ""
    device_id: str = ""
    jti: str = ""
    #: For ``jti``: when the token expires (the revocation is kept until then).
    expires_at: float = 0.0
    reason: str = ""


class Revoked(msgspec.Struct, kw_only=True):
    """The revocation stored and announced."""

    revocation_id: str
    #: Tokens issued at or before this time are refused (``user`` and ``device``).
    issued_before: float | None


class UserPresence(msgspec.Struct, kw_only=True):
    """One user's presence (``meta`` None: never seen)."""

    user_id: str
    meta: UserMeta | None


class PresencePage(msgspec.Struct, kw_only=True):
    """The users asked, in order."""

    users: list[UserPresence]


class NewConversation(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A conversation created for ``creator_id``: direct with the one other user of
    ``member_ids``, or a group."""

    kind: Literal["direct", "group"]
    creator_id: str
    member_ids: tuple[str, ...] = ()
    title: str | None = None


class CreatedConversation(msgspec.Struct, kw_only=True):
    """The conversation (with its last seq) and its members."""

    conversation: Conversation
    members: list[Member]


class SystemMessage(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A system message (``kind`` ``system``) in a conversation, idempotent by ``client_id``."""

    event: str
    client_id: str
    details: dict[str, Any] = {}


def _api(ctx: NamedDependency[HttpContext]) -> ServerApi:
    if ctx.server_api is None:
        raise WhisprError(Reason.UNAVAILABLE, "this node serves no server API")
    return ctx.server_api


@post("/publish", summary="Publish to a user's topic", status_code=HTTP_200_OK, responses=_PROBLEMS)
async def publish(
    ctx: NamedDependency[HttpContext], caller: NamedDependency[str], data: JSONBody[Publish]
) -> Published:
    """Publish an event on ``user:<id>`` or ``notification:<id>``, to the user's devices on
    every node; the server's own event names are refused."""
    return Published(topic=_api(ctx).publish(data.topic, data.user_id, data.event, data.payload))


@post(
    "/disconnect",
    summary="Disconnect a user",
    status_code=HTTP_204_NO_CONTENT,
    responses=_PROBLEMS,
)
async def disconnect(
    ctx: NamedDependency[HttpContext], caller: NamedDependency[str], data: JSONBody[Disconnect]
) -> None:
    """Close the user's connections (one device's) on every node; they may reconnect."""
    _api(ctx).disconnect(data.user_id, data.device_id or None, data.reason)


@post("/revocations", summary="Revoke tokens", status_code=HTTP_201_CREATED, responses=_PROBLEMS)
async def revoke(
    ctx: NamedDependency[HttpContext], caller: NamedDependency[str], data: JSONBody[Revoke]
) -> Revoked:
    """Store a revocation, then close what it covers on every node; tokens it covers are
    refused from then on, by the WebSocket and by this API."""
    revocation = await _api(ctx).revoke(
        data.kind,
        user_id=data.user_id,
        device_id=data.device_id,
        jti=data.jti,
        expires_at=data.expires_at,
        reason=data.reason,
    )
    issued_before = revocation.issued_before if data.kind != "jti" else None
    return Revoked(revocation_id=revocation.id, issued_before=issued_before)


@get("/presence", summary="Query presence", responses=_PROBLEMS)
async def presence(
    ctx: NamedDependency[HttpContext],
    caller: NamedDependency[str],
    user_ids: Annotated[list[str], QueryParameter(description="The users (repeat the parameter).")],
) -> PresencePage:
    """Each distinct user asked, in order, with their presence."""
    found = await _api(ctx).presence(user_ids)
    return PresencePage(users=[UserPresence(user_id=u, meta=m) for u, m in found])


@post(
    "/conversations",
    summary="Create a conversation",
    status_code=HTTP_201_CREATED,
    responses=_PROBLEMS,
)
async def new_conversation(
    ctx: NamedDependency[HttpContext], caller: NamedDependency[str], data: JSONBody[NewConversation]
) -> CreatedConversation:
    """A conversation for ``creator_id`` (``CreateConversation`` of gRPC)."""
    if not data.creator_id:
        raise WhisprError(Reason.INVALID, "creator_id is required", field="creator_id")
    conversation, members, last_seq = await create_conversation(
        ctx.messaging, data.creator_id, data.kind, data.member_ids, data.title or None
    )
    conversation = msgspec.structs.replace(conversation, last_seq=last_seq)
    return CreatedConversation(conversation=conversation, members=members)


@post(
    "/conversations/{conversation_id:str}/system-messages",
    summary="Post a system message",
    status_code=HTTP_201_CREATED,
    responses=_PROBLEMS,
)
async def system_message(
    ctx: NamedDependency[HttpContext],
    caller: NamedDependency[str],
    conversation_id: FromPath[str],
    data: JSONBody[SystemMessage],
) -> Message:
    """A system message (``SendSystemMessage`` of gRPC); a retry with the same
    ``client_id`` answers the message stored the first time."""
    details = dict(data.details)
    details.setdefault("service", caller)
    return await ctx.messaging.send_system(
        conversation_id, system_event(data.event), details, data.client_id
    )


router = Router(
    "/",
    route_handlers=[publish, disconnect, revoke, presence, new_conversation, system_message],
)
