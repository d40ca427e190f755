"""The ``whispr.server.v1.ServerApi`` servicer: the server API for backends (docs/grpc.md).

Each RPC converts its request, calls :class:`~whispr.server_api.ServerApi` (where the rules
are) and converts the answer. Every handler goes through ``rpc``
(:mod:`whispr.grpc.service`), the one place where a caller is authenticated, a refusal
becomes a status code and an audit record, and each call is counted and timed.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

import grpc
import structlog

from actors.errors import Reason, WhisprError
from whispr.audit import AuditLog
from whispr.grpc.auth import CallerAuth
from whispr.grpc.convert import conversation_to_pb, struct_to_dict
from whispr.grpc.gen.whispr.server.v1 import server_pb2 as pb
from whispr.grpc.gen.whispr.server.v1 import server_pb2_grpc as pb_grpc
from whispr.grpc.service import RpcMetrics, rpc
from whispr.revocations import RevocationKind
from whispr.server_api import ServerApi, TopicKind
from whispr.user_presence import UserMeta

__all__ = ["SERVER_API", "ServerApiServicer"]

log = structlog.get_logger("whispr.grpc")

SERVER_API: Final = pb.DESCRIPTOR.services_by_name["ServerApi"].full_name

Request = TypeVar("Request")
Response = TypeVar("Response")

_TOPICS: Final[dict[int, TopicKind]] = {
    pb.TOPIC_KIND_NOTIFICATION: "notification",
    pb.TOPIC_KIND_USER: "user",
}
_REVOCATIONS: Final[dict[int, RevocationKind]] = {
    pb.REVOCATION_KIND_USER: "user",
    pb.REVOCATION_KIND_DEVICE: "device",
    pb.REVOCATION_KIND_JTI: "jti",
}
_STATUSES: Final = {
    "online": pb.PRESENCE_STATUS_ONLINE,
    "away": pb.PRESENCE_STATUS_AWAY,
    "offline": pb.PRESENCE_STATUS_OFFLINE,
}


def _presence_to_pb(user_id: str, meta: UserMeta | None) -> pb.UserPresence:
    if meta is None:
        return pb.UserPresence(user_id=user_id, status=pb.PRESENCE_STATUS_OFFLINE)
    return pb.UserPresence(
        user_id=user_id,
        status=_STATUSES[meta.status],
        last_seen=(meta.last_seen or 0.0) if meta.status == "offline" else 0.0,
        last_seen_hidden=meta.hide_last_seen,
    )


class ServerApiServicer(pb_grpc.ServerApiServicer):
    """The server API over one node's :class:`ServerApi`."""

    def __init__(
        self, api: ServerApi, auth: CallerAuth, *, audit: AuditLog, metrics: RpcMetrics
    ) -> None:
        self.api = api
        self.auth = auth
        self.audit = audit
        self.metrics = metrics

    def authenticate(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        """The calling service's name; raises ``unauthorized`` (UNAUTHENTICATED)."""
        return self.auth.caller(context.invocation_metadata(), context.auth_context())

    @rpc("Publish")
    async def Publish(self, caller: str, request: pb.PublishRequest) -> pb.PublishResponse:
        kind = _TOPICS.get(request.topic)
        if kind is None:
            raise WhisprError(
                Reason.INVALID,
                "topic must be TOPIC_KIND_NOTIFICATION or TOPIC_KIND_USER",
                field="topic",
            )
        topic = self.api.publish(
            kind, request.user_id, request.event, struct_to_dict(request.payload)
        )
        return pb.PublishResponse(topic=topic)

    @rpc("Disconnect")
    async def Disconnect(self, caller: str, request: pb.DisconnectRequest) -> pb.DisconnectResponse:
        self.api.disconnect(request.user_id, request.device_id or None, request.reason)
        log.info(
            "disconnect ordered",
            caller=caller,
            user_id=request.user_id,
            device_id=request.device_id or None,
        )
        return pb.DisconnectResponse()

    @rpc("RevokeTokens")
    async def RevokeTokens(
        self, caller: str, request: pb.RevokeTokensRequest
    ) -> pb.RevokeTokensResponse:
        kind = _REVOCATIONS.get(request.kind)
        if kind is None:
            raise WhisprError(
                Reason.INVALID, "kind must be REVOCATION_KIND_USER, _DEVICE or _JTI", field="kind"
            )
        revocation = await self.api.revoke(
            kind,
            user_id=request.user_id,
            device_id=request.device_id,
            jti=request.jti,
            expires_at=request.expires_at,
            reason=request.reason,
        )
        log.info("tokens revoked", caller=caller, kind=kind, revocation=revocation.id)
        return pb.RevokeTokensResponse(
            revocation_id=revocation.id,
            issued_before=revocation.issued_before if kind != "jti" else 0.0,
        )

    @rpc("QueryPresence")
    async def QueryPresence(
        self, caller: str, request: pb.QueryPresenceRequest
    ) -> pb.QueryPresenceResponse:
        found = await self.api.presence(list(request.user_ids))
        return pb.QueryPresenceResponse(users=[_presence_to_pb(u, m) for u, m in found])

    @rpc("ListUserConversations")
    async def ListUserConversations(
        self, caller: str, request: pb.ListUserConversationsRequest
    ) -> pb.ListUserConversationsResponse:
        if request.limit < 0:
            raise WhisprError(Reason.INVALID, "limit must not be negative", field="limit")
        summaries = await self.api.conversations(
            request.user_id,
            limit=request.limit or 50,
            before=request.before or None,
            before_id=request.before_id or None,
        )
        return pb.ListUserConversationsResponse(
            conversations=[
                pb.UserConversation(
                    conversation=conversation_to_pb(s.conversation),
                    role=s.role,
                    unread_count=s.unread_count,
                    last_activity=s.conversation.last_message_at or s.conversation.created_at,
                )
                for s in summaries
            ]
        )
