"""The ``whispr.messaging.v1.MessagingService`` servicer: sibling services' API.

Each RPC checks its arguments, calls :class:`~actors.messaging.Messaging`
(the same rules and actors as the WebSocket path) and converts the answer.
Every handler goes through :func:`rpc` (or :func:`stream_rpc`), which is the
one place where the caller is authenticated, a refusal becomes a status code
(:mod:`whispr.grpc.status`) and, when it is a security event, an audit record
(:mod:`whispr.audit`), an unexpected failure becomes INTERNAL without
leaking its details, and each call is counted and timed.

The calling service acts as itself: messages it sends are from
``service:<name>``, and membership changes without an ``acting_user_id`` are
made by the service, which needs no role (the user service keeps groups in
sync). With an ``acting_user_id``, that user's rights apply as on the
WebSocket path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import grpc
import structlog
from opentelemetry.metrics import Counter, Histogram

from actors import rules
from actors.conversation import Draft
from actors.errors import Reason, WhisprError
from actors.events import payload_of
from actors.messaging import Messaging
from actors.model import Member, Message, MessageKind
from actors.rules import MAX_PAGE
from actors.search import MessageFilters
from actors.stream import StreamItem
from whispr.audit import AuditLog
from whispr.grpc.auth import CallerAuth
from whispr.grpc.convert import (
    conversation_to_pb,
    kind_from_pb,
    member_to_pb,
    message_to_pb,
    struct_from_dict,
    struct_to_dict,
)
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2 as pb
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2_grpc as pb_grpc
from whispr.grpc.status import status_of, trailing_metadata
from whispr.server_api import create_conversation, system_event
from whispr.telemetry import SECONDS_BUCKETS, get_meter

__all__ = [
    "MessagingServicer",
    "RpcMetrics",
    "Served",
    "acting_party",
    "add_members",
    "remove_member",
    "required",
    "rpc",
    "stream_rpc",
]

log = structlog.get_logger("whispr.grpc")

Request = TypeVar("Request")
Response = TypeVar("Response")

#: Events a follower may fall behind by before its stream is ended (it resumes).
FOLLOW_BACKLOG = 1000


@dataclass(frozen=True)
class RpcMetrics:
    """Calls by method and status code, and their durations."""

    calls: Counter = field(
        default_factory=lambda: get_meter("whispr.grpc").create_counter(
            "whispr_grpc_calls", description="gRPC calls served, by method, caller and code"
        )
    )
    duration: Histogram = field(
        default_factory=lambda: get_meter("whispr.grpc").create_histogram(
            "whispr_grpc_call_seconds",
            unit="s",
            description="gRPC call durations, by method",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )
    )


class Served(Protocol):
    """What :func:`rpc` uses of a servicer: every service of the node's gRPC API has it."""

    audit: AuditLog
    metrics: RpcMetrics

    def authenticate(self, context: grpc.aio.ServicerContext[Any, Any]) -> str: ...


class ServedOverMessaging:
    """What every servicer over one node's :class:`Messaging` holds, and the one way it
    names its caller: each service of the node's gRPC API is one of these (it is
    :class:`Served`), so an API added beside them repeats none of it."""

    def __init__(
        self,
        messaging: Messaging,
        auth: CallerAuth,
        metrics: RpcMetrics | None = None,
        *,
        audit: AuditLog,
    ) -> None:
        self.messaging = messaging
        self.auth = auth
        #: Refused credentials, rights and rates are recorded here (whispr/audit/).
        self.audit = audit
        self.metrics = metrics or RpcMetrics()

    def authenticate(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        """The calling service's name; raises ``unauthorized`` (UNAUTHENTICATED)."""
        return self.auth.caller(context.invocation_metadata(), context.auth_context())


S = TypeVar("S", bound=Served)


def rpc(
    name: str,
) -> Callable[
    [Callable[[S, str, Request], Awaitable[Response]]],
    Callable[[S, Request, grpc.aio.ServicerContext[Any, Any]], Awaitable[Response]],
]:
    """Authenticate, map refusals to status codes, count and time: for a unary RPC."""

    def decorate(
        method: Callable[[S, str, Request], Awaitable[Response]],
    ) -> Callable[[S, Request, grpc.aio.ServicerContext[Any, Any]], Awaitable[Response]]:
        async def handler(
            self: S, request: Request, context: grpc.aio.ServicerContext[Any, Any]
        ) -> Response:
            started = time.perf_counter()
            caller, code = "", grpc.StatusCode.OK
            try:
                caller = self.authenticate(context)
                return await method(self, caller, request)
            except WhisprError as error:
                code = status_of(error)
                self.audit.refused(
                    error,
                    source="grpc",
                    user_id=_acting_user(request),
                    actor=caller or None,
                    peer=context.peer(),
                    method=name,
                )
                await context.abort(code, error.message, trailing_metadata(error))
                raise  # abort raises; this keeps type checkers sure of it
            except (asyncio.CancelledError, grpc.aio.AbortError):
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception:
                code = grpc.StatusCode.INTERNAL
                log.exception("grpc call failed", method=name, caller=caller)
                await context.abort(code, "internal error")
                raise
            finally:
                self.metrics.calls.add(1, {"method": name, "caller": caller, "code": code.name})
                self.metrics.duration.record(time.perf_counter() - started, {"method": name})

        handler.__name__ = handler.__qualname__ = name
        handler.__doc__ = method.__doc__
        return handler

    return decorate


def stream_rpc(
    name: str,
) -> Callable[
    [Callable[[S, str, Request], AsyncIterator[Response]]],
    Callable[[S, Request, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Response]],
]:
    """:func:`rpc` for a server-streaming RPC: a refusal before or during the stream ends it
    with its status code (and trailing metadata), as a unary call's would."""

    def decorate(
        method: Callable[[S, str, Request], AsyncIterator[Response]],
    ) -> Callable[[S, Request, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Response]]:
        async def handler(
            self: S, request: Request, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Response]:
            started = time.perf_counter()
            caller, code = "", grpc.StatusCode.OK
            try:
                caller = self.authenticate(context)
                async for item in method(self, caller, request):
                    yield item
            except WhisprError as error:
                code = status_of(error)
                self.audit.refused(
                    error,
                    source="grpc",
                    user_id=_acting_user(request),
                    actor=caller or None,
                    peer=context.peer(),
                    method=name,
                )
                await context.abort(code, error.message, trailing_metadata(error))
            except (asyncio.CancelledError, grpc.aio.AbortError):
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception:
                code = grpc.StatusCode.INTERNAL
                log.exception("grpc stream failed", method=name, caller=caller)
                await context.abort(code, "internal error")
            finally:
                self.metrics.calls.add(1, {"method": name, "caller": caller, "code": code.name})
                self.metrics.duration.record(time.perf_counter() - started, {"method": name})

        handler.__name__ = handler.__qualname__ = name
        handler.__doc__ = method.__doc__
        return handler

    return decorate


class MessagingServicer(ServedOverMessaging, pb_grpc.MessagingServiceServicer):
    """The messaging API over one node's :class:`Messaging` (followers read its streams)."""

    def __init__(
        self,
        messaging: Messaging,
        auth: CallerAuth,
        metrics: RpcMetrics | None = None,
        *,
        audit: AuditLog,
        follow_backlog: int = FOLLOW_BACKLOG,
    ) -> None:
        super().__init__(messaging, auth, metrics, audit=audit)
        self.follow_backlog = follow_backlog

    # -- conversations -------------------------------------------------------------

    @rpc("CreateConversation")
    async def CreateConversation(
        self, caller: str, request: pb.CreateConversationRequest
    ) -> pb.CreateConversationResponse:
        creator = required(request.creator_id, "creator_id")
        kind = kind_from_pb(request.kind)
        if kind not in ("direct", "group"):
            raise WhisprError(
                Reason.INVALID, "kind must be CONVERSATION_KIND_DIRECT or _GROUP", field="kind"
            )
        conversation, members, last_seq = await create_conversation(
            self.messaging, creator, kind, request.member_ids, request.title or None
        )
        log.info("conversation created", caller=caller, conversation=conversation.id, kind=kind)
        return pb.CreateConversationResponse(
            conversation=conversation_to_pb(conversation, last_seq),
            members=[member_to_pb(m) for m in members],
        )

    @rpc("GetConversation")
    async def GetConversation(
        self, caller: str, request: pb.GetConversationRequest
    ) -> pb.GetConversationResponse:
        conversation_id = required(request.conversation_id, "conversation_id")
        conversation, members, last_seq = await self.messaging.describe(conversation_id)
        return pb.GetConversationResponse(
            conversation=conversation_to_pb(conversation, last_seq),
            members=[member_to_pb(m) for m in members],
        )

    @rpc("AddMembers")
    async def AddMembers(self, caller: str, request: pb.AddMembersRequest) -> pb.AddMembersResponse:
        added = await add_members(
            self.messaging,
            caller,
            request.conversation_id,
            request.user_ids,
            request.acting_user_id,
        )
        return pb.AddMembersResponse(added=[member_to_pb(m) for m in added])

    @rpc("RemoveMember")
    async def RemoveMember(
        self, caller: str, request: pb.RemoveMemberRequest
    ) -> pb.RemoveMemberResponse:
        removed = await remove_member(
            self.messaging, caller, request.conversation_id, request.user_id, request.acting_user_id
        )
        return pb.RemoveMemberResponse(removed=removed)

    # -- messages ---------------------------------------------------------------------

    @rpc("SendSystemMessage")
    async def SendSystemMessage(
        self, caller: str, request: pb.SendSystemMessageRequest
    ) -> pb.SendMessageResponse:
        conversation_id = required(request.conversation_id, "conversation_id")
        event = system_event(required(request.event, "event"))
        details = struct_to_dict(request.details)
        details.setdefault("service", caller)
        message = await self.messaging.send_system(
            conversation_id, event, details, required(request.client_id, "client_id")
        )
        return pb.SendMessageResponse(message=message_to_pb(message))

    @rpc("SendServiceMessage")
    async def SendServiceMessage(
        self, caller: str, request: pb.SendServiceMessageRequest
    ) -> pb.SendMessageResponse:
        conversation_id = required(request.conversation_id, "conversation_id")
        draft = Draft(
            client_id=required(request.client_id, "client_id"),
            kind="text",
            content=required(request.content, "content"),
            metadata=struct_to_dict(request.metadata),
        )
        message = await self.messaging.send_as_service(_service_id(caller), conversation_id, draft)
        return pb.SendMessageResponse(message=message_to_pb(message))

    @rpc("ListMessages")
    async def ListMessages(
        self, caller: str, request: pb.ListMessagesRequest
    ) -> pb.ListMessagesResponse:
        conversation_id = required(request.conversation_id, "conversation_id")
        if request.before_seq and request.after_seq:
            raise WhisprError(
                Reason.INVALID, "set before_seq or after_seq, not both", field="before_seq"
            )
        rules.check_position(request.before_seq, "before_seq")
        rules.check_position(request.after_seq, "after_seq")
        if not 0 <= request.limit <= MAX_PAGE:
            raise WhisprError(
                Reason.INVALID, f"limit must be 1 to {MAX_PAGE} (0: 50)", field="limit"
            )
        messages = await self.messaging.service_history(
            conversation_id,
            before_seq=request.before_seq or None,
            after_seq=request.after_seq or None,
            limit=request.limit or 50,
            filters=_history_filters(request),
        )
        return pb.ListMessagesResponse(messages=[message_to_pb(m) for m in messages])

    @rpc("GetUnreadCounts")
    async def GetUnreadCounts(
        self, caller: str, request: pb.GetUnreadCountsRequest
    ) -> pb.GetUnreadCountsResponse:
        user_id = required(request.user_id, "user_id")
        counts = await self.messaging.unread_counts(user_id)
        return pb.GetUnreadCountsResponse(unread=counts)

    # -- following a conversation --------------------------------------------------------

    @stream_rpc("FollowConversation")
    async def FollowConversation(
        self, caller: str, request: pb.FollowConversationRequest
    ) -> AsyncIterator[pb.ConversationEvent]:
        """Replay after ``after_seq``, then live events; see the proto file."""
        async for event in self._follow(request):
            yield event

    async def _follow(
        self, request: pb.FollowConversationRequest
    ) -> AsyncIterator[pb.ConversationEvent]:
        conversation_id = required(request.conversation_id, "conversation_id")
        rules.check_position(request.after_seq, "after_seq")
        _, _, head = await self.messaging.describe(conversation_id)  # not_found first
        # Live events wait here for the stream to be read; None: this follower fell behind.
        queue: asyncio.Queue[pb.ConversationEvent | None] = asyncio.Queue()
        behind = False

        def fell_behind() -> None:
            nonlocal behind
            if not behind:
                behind = True
                queue.put_nowait(None)

        def deliver(item: StreamItem) -> None:
            if behind:
                return
            if queue.qsize() >= self.follow_backlog:
                fell_behind()
            elif isinstance(item, Message):  # read from the store to fill a gap
                queue.put_nowait(_message_event("new_message", item))
            else:
                queue.put_nowait(_event(conversation_id, item.name, payload_of(item)))

        stream = self.messaging.stream(
            conversation_id, viewer_id=None, deliver=deliver, on_overflow=fell_behind
        )
        try:
            # Subscribed before the store is read, so that nothing falls between.
            await stream.subscribe()
            if request.after_seq:
                async for message in stream.replay(request.after_seq):
                    yield _message_event("new_message", message)
            else:
                stream.start_at(head)
            stream.go_live()
            while True:
                event = await queue.get()
                if event is None:
                    raise WhisprError(
                        Reason.RATE_LIMITED,
                        f"this follower fell behind (over {self.follow_backlog} events "
                        "waiting, or missing ones the store could not give now); follow "
                        "again with after_seq set to the last seq received",
                    )
                yield event
        finally:
            stream.close()


def _message_event(name: str, message: Message) -> pb.ConversationEvent:
    return pb.ConversationEvent(
        conversation_id=message.conversation_id, event=name, message=message_to_pb(message)
    )


def _event(conversation_id: str, name: str, payload: Any) -> pb.ConversationEvent:
    event = pb.ConversationEvent(conversation_id=conversation_id, event=name)
    if isinstance(payload, dict):
        message = payload.pop("message", None)
        payload.pop("envelopes", None)  # each device's own: never to a service
        if isinstance(message, dict):
            event.message.CopyFrom(message_to_pb(message))
        event.payload.CopyFrom(struct_from_dict(payload))
    return event


def required(value: str, name: str) -> str:
    """``value``, refused as ``invalid`` naming ``name`` when empty (proto3's unset)."""
    if not value:
        raise WhisprError(Reason.INVALID, f"{name} is required", field=name)
    return value


def acting_party(caller: str, acting_user_id: str) -> tuple[str, bool]:
    """Who makes a change, and whether it is trusted: the acting user (their role decides),
    or, without one, the calling service itself (it needs no role)."""
    if acting_user_id:
        return acting_user_id, False
    return _service_id(caller), True


async def add_members(
    messaging: Messaging,
    caller: str,
    conversation_id: str,
    user_ids: Sequence[str],
    acting_user_id: str,
) -> list[Member]:
    """``AddMembers`` of both ``MessagingService`` and ``ConversationAdmin``: the members
    who were not in yet."""
    conversation_id = required(conversation_id, "conversation_id")
    wanted = [u for u in user_ids if u]
    if not wanted:
        raise WhisprError(Reason.INVALID, "user_ids must name at least one user", field="user_ids")
    acting, trusted = acting_party(caller, acting_user_id)
    return await messaging.add_members(acting, conversation_id, wanted, trusted=trusted)


async def remove_member(
    messaging: Messaging,
    caller: str,
    conversation_id: str,
    user_id: str,
    acting_user_id: str,
) -> bool:
    """``RemoveMember`` of both ``MessagingService`` and ``ConversationAdmin``: False when
    the user was not a member (nothing to do)."""
    conversation_id = required(conversation_id, "conversation_id")
    user_id = required(user_id, "user_id")
    _, members, _ = await messaging.describe(conversation_id)
    if all(m.user_id != user_id for m in members):
        return False
    acting, trusted = acting_party(caller, acting_user_id)
    await messaging.remove_member(acting, conversation_id, user_id, trusted=trusted)
    return True


def _history_filters(request: pb.ListMessagesRequest) -> MessageFilters:
    """A ``ListMessages`` request's filters, as the WebSocket ``history`` payload gives them."""
    kind = _KINDS.get(request.kind) if request.kind else None
    if request.kind and kind is None:
        raise WhisprError(Reason.INVALID, f"kind must be one of {sorted(_KINDS)}", field="kind")
    return MessageFilters(
        sender_id=request.sender_id or None,
        kind=kind,
        since=request.since if request.HasField("since") else None,
        until=request.until if request.HasField("until") else None,
    )


_KINDS: dict[str, MessageKind] = {"text": "text", "media": "media", "system": "system"}


def _acting_user(request: object) -> str | None:
    """The user a call acts for (``acting_user_id``, in the calls that take one)."""
    acting = getattr(request, "acting_user_id", None)
    return acting if isinstance(acting, str) and acting else None


def _service_id(caller: str) -> str:
    """The sender id of a message from a sibling service."""
    return f"service:{caller}"
