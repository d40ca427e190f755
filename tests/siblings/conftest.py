"""Real grpc.aio servers standing in for the sibling services, speaking their contracts.

One :class:`StandIn` serves the four services on a free port. Each service's
behaviour is set per test: answer (with a configurable answer), be slow (past
the deadline), fail with UNAVAILABLE, or fail a number of times then answer.
Every request received is recorded, so a test can tell whether a call reached
the network.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from whispr.config import Settings, load_settings
from whispr.grpc.gen.media.v1 import media_pb2, media_pb2_grpc
from whispr.grpc.gen.moderation.v1 import moderation_pb2, moderation_pb2_grpc
from whispr.grpc.gen.notification.v1 import notification_pb2, notification_pb2_grpc
from whispr.grpc.gen.user.v1 import user_pb2, user_pb2_grpc

TOKEN = "sibling-token-for-tests"


@dataclass
class Behaviour:
    """How one stand-in service behaves; tests change it as they go."""

    mode: str = "ok"  # ok | slow | fail
    slow_s: float = 1.0
    fail_first: int = 0  # fail this many calls with UNAVAILABLE, then answer
    requests: list[Any] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)

    async def enter(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.requests.append(request)
        self.metadata.append({k: str(v) for k, v in context.invocation_metadata() or ()})
        if self.fail_first > 0:
            self.fail_first -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "stand-in failing")
        if self.mode == "fail":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "stand-in failing")
        if self.mode == "slow":
            await asyncio.sleep(self.slow_s)


class _Users(user_pb2_grpc.UserServiceServicer):
    def __init__(self, stand_in: StandIn) -> None:
        self.stand_in = stand_in

    async def GetUserStatus(self, request: Any, context: Any) -> Any:
        await self.stand_in.users.enter(request, context)
        if request.user_id in self.stand_in.unknown_users:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such user")
        active = request.user_id not in self.stand_in.inactive_users
        return user_pb2.GetUserStatusResponse(user_id=request.user_id, active=active)


class _Notifications(notification_pb2_grpc.NotificationServiceServicer):
    def __init__(self, stand_in: StandIn) -> None:
        self.stand_in = stand_in

    async def SendPush(self, request: Any, context: Any) -> Any:
        await self.stand_in.notifications.enter(request, context)
        # Idempotent by request id, as the contract says: a retry pushes nothing new.
        self.stand_in.pushed.setdefault(request.request_id, request)
        return notification_pb2.SendPushResponse(accepted=True)


class _Media(media_pb2_grpc.MediaServiceServicer):
    def __init__(self, stand_in: StandIn) -> None:
        self.stand_in = stand_in

    async def ValidateAttachment(self, request: Any, context: Any) -> Any:
        await self.stand_in.media.enter(request, context)
        if request.attachment_id in self.stand_in.bad_media:
            return media_pb2.ValidateAttachmentResponse(valid=False, reason="size mismatch")
        return media_pb2.ValidateAttachmentResponse(valid=True)


class _Moderation(moderation_pb2_grpc.ModerationServiceServicer):
    def __init__(self, stand_in: StandIn) -> None:
        self.stand_in = stand_in

    async def CheckContent(self, request: Any, context: Any) -> Any:
        await self.stand_in.moderation.enter(request, context)
        if "forbidden" in request.content:
            return moderation_pb2.CheckContentResponse(
                verdict=moderation_pb2.VERDICT_BLOCK, reason="a forbidden word"
            )
        return moderation_pb2.CheckContentResponse(verdict=moderation_pb2.VERDICT_ALLOW)

    async def ReportActivity(self, request: Any, context: Any) -> Any:
        await self.stand_in.moderation.enter(request, context)
        self.stand_in.reports.append(request)
        return moderation_pb2.ReportActivityResponse()


@dataclass
class StandIn:
    """The four sibling services on one port."""

    users: Behaviour = field(default_factory=Behaviour)
    notifications: Behaviour = field(default_factory=Behaviour)
    media: Behaviour = field(default_factory=Behaviour)
    moderation: Behaviour = field(default_factory=Behaviour)
    inactive_users: set[str] = field(default_factory=set)
    unknown_users: set[str] = field(default_factory=set)
    bad_media: set[str] = field(default_factory=set)
    pushed: dict[str, Any] = field(default_factory=dict)
    #: Suspicious-activity reports the moderation service received.
    reports: list[Any] = field(default_factory=list)
    port: int = 0
    server: Any = None

    async def start(self, port: int = 0) -> None:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        user_pb2_grpc.add_UserServiceServicer_to_server(_Users(self), server)
        notification_pb2_grpc.add_NotificationServiceServicer_to_server(
            _Notifications(self), server
        )
        media_pb2_grpc.add_MediaServiceServicer_to_server(_Media(self), server)
        moderation_pb2_grpc.add_ModerationServiceServicer_to_server(_Moderation(self), server)
        self.port = server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        self.server = server

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(0)
            self.server = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def settings(self, **overrides: Any) -> Settings:
        """Settings pointing every sibling here, with short breaker times for tests."""
        env = {
            "WHISPR_USER_SERVICE_URL": self.address,
            "WHISPR_NOTIFICATION_SERVICE_URL": self.address,
            "WHISPR_MEDIA_SERVICE_URL": self.address,
            "WHISPR_MODERATION_SERVICE_URL": self.address,
            "WHISPR_SIBLING_TOKEN": TOKEN,
            "WHISPR_SIBLING_DEADLINE_S": "0.3",
            "WHISPR_SIBLING_BREAKER_OPEN_S": "0.3",
        }
        return load_settings(env=env).with_overrides(**overrides)


@pytest.fixture
async def stand_in() -> AsyncIterator[StandIn]:
    siblings = StandIn()
    await siblings.start()
    yield siblings
    await siblings.stop()
