"""The user service: is a user active, asked when a WebSocket connects.

Answers (active or not) are cached for ``WHISPR_USER_ACTIVE_CACHE_S`` (10 s),
so a reconnect storm costs the user service one call per user, and a suspended
user is refused within that time. Fallback, when the service is not
configured or gives no answer: the user counts as active. The token was
already verified, signed by the auth service; refusing every user during a
user service outage would take the whole product down with it.
"""

from __future__ import annotations

import time

import grpc
from cachetools import TTLCache

from whispr.grpc.gen.user.v1 import user_pb2, user_pb2_grpc
from whispr.siblings.client import SiblingClient, SiblingUnavailable

__all__ = ["UserDirectory"]

#: Users whose answers are kept at most (least recently used go first).
CACHE_SIZE = 100_000


class UserDirectory:
    """``is_active`` with a short cache, over the user service."""

    def __init__(self, client: SiblingClient, cache_s: float) -> None:
        self.client = client
        self._cache: TTLCache[str, bool] = TTLCache(CACHE_SIZE, cache_s, timer=time.monotonic)

    @property
    def configured(self) -> bool:
        return self.client.configured

    async def is_active(self, user_id: str) -> bool:
        cached = self._cache.get(user_id)
        if cached is not None:
            return cached
        if not self.client.configured:
            return True
        try:
            response = await self.client.call(
                "GetUserStatus", user_pb2.GetUserStatusRequest(user_id=user_id)
            )
        except SiblingUnavailable:
            self.client.fallback("unavailable")
            return True  # not cached: ask again once the service is back
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                self.client.fallback("unexpected_answer")
                return True
            active = False  # unknown user
        else:
            active = bool(response.active)
        self._cache[user_id] = active
        return active


SERVICE = user_pb2.DESCRIPTOR.services_by_name["UserService"].full_name
STUB = user_pb2_grpc.UserServiceStub
