"""The moderation service: may this content be posted.

Asked before a member's message with content is accepted (never for content
encrypted end to end, which it could not read). A BLOCK verdict refuses the
message with ``forbidden`` and the service's reason. When the service gives no
answer, ``WHISPR_MODERATION_POLICY`` decides: ``fail_open`` (the default)
accepts the message, and counts it; ``fail_closed`` refuses it with
``unavailable``, and the client retries. Not configured: nothing is checked.
"""

from __future__ import annotations

import grpc

from actors.errors import Reason, WhisprError
from whispr.grpc.gen.moderation.v1 import moderation_pb2, moderation_pb2_grpc
from whispr.siblings.client import SiblingClient, SiblingUnavailable

__all__ = ["Moderator"]


class Moderator:
    """``check`` over the moderation service, with a fail-open or fail-closed policy."""

    def __init__(self, client: SiblingClient, *, fail_open: bool) -> None:
        self.client = client
        self.fail_open = fail_open

    @property
    def configured(self) -> bool:
        return self.client.configured

    async def check(self, user_id: str, conversation_id: str, content: str, kind: str) -> None:
        """Raises ``forbidden`` when blocked, ``unavailable`` when unchecked and failing closed."""
        if not self.client.configured:
            return
        request = moderation_pb2.CheckContentRequest(
            user_id=user_id, conversation_id=conversation_id, content=content, kind=kind
        )
        try:
            response = await self.client.call("CheckContent", request)
        except (SiblingUnavailable, grpc.aio.AioRpcError) as exc:
            self.client.fallback("fail_open" if self.fail_open else "fail_closed")
            if self.fail_open:
                return
            raise WhisprError(Reason.UNAVAILABLE, "moderation is unavailable; try again") from exc
        if response.verdict == moderation_pb2.VERDICT_BLOCK:
            raise WhisprError(
                Reason.FORBIDDEN, f"refused by moderation: {response.reason or 'not allowed'}"
            )

    async def report(
        self,
        user_id: str,
        pattern: str,
        reason: str,
        *,
        device_id: str,
        node: str,
        at: float,
        details: dict[str, str],
    ) -> bool:
        """Report a user whose activity matched a suspicious pattern; whether the service
        took it. Never raises: a report that cannot be sent is logged and counted by the
        client (the audit record of the detection is kept either way)."""
        if not self.client.configured:
            return False
        request = moderation_pb2.ReportActivityRequest(
            user_id=user_id,
            pattern=pattern,
            reason=reason,
            device_id=device_id,
            node=node,
            at=at,
            details=details,
        )
        try:
            await self.client.call("ReportActivity", request)
        except (SiblingUnavailable, grpc.aio.AioRpcError):
            self.client.fallback("report_dropped")
            return False
        return True


SERVICE = moderation_pb2.DESCRIPTOR.services_by_name["ModerationService"].full_name
STUB = moderation_pb2_grpc.ModerationServiceStub
