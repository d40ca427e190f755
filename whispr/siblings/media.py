"""The media service: an attachment reference is real and its metadata true.

Asked before a media message is accepted, after the local metadata checks.
Fallback when not configured: the local checks only. When the service gives
no answer, the message is refused with ``unavailable`` (fail closed): a
message must not point at media nobody checked, and the client retries.
"""

from __future__ import annotations

import grpc

from actors.errors import Reason, WhisprError
from actors.model import Attachment
from whispr.grpc.gen.media.v1 import media_pb2, media_pb2_grpc
from whispr.siblings.client import SiblingClient, SiblingUnavailable

__all__ = ["MediaValidator"]


class MediaValidator:
    """``validate`` over the media service."""

    def __init__(self, client: SiblingClient) -> None:
        self.client = client

    @property
    def configured(self) -> bool:
        return self.client.configured

    async def validate(self, attachment: Attachment, uploader_id: str) -> None:
        """Raises ``invalid`` for a bad reference, ``unavailable`` when it cannot be checked."""
        if not self.client.configured:
            return
        request = media_pb2.ValidateAttachmentRequest(
            attachment_id=attachment.id,
            mime_type=attachment.mime_type,
            size=attachment.size,
            name=attachment.name,
            uploader_id=uploader_id,
        )
        try:
            response = await self.client.call("ValidateAttachment", request)
        except SiblingUnavailable as exc:
            self.client.fallback("unavailable")
            raise WhisprError(
                Reason.UNAVAILABLE, "the media service is unavailable; try again"
            ) from exc
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise WhisprError(
                    Reason.INVALID,
                    f"attachment {attachment.id}: no such media",
                    field="attachments",
                ) from exc
            self.client.fallback("unexpected_answer")
            raise WhisprError(
                Reason.UNAVAILABLE, "the media service is unavailable; try again"
            ) from exc
        if not response.valid:
            reason = response.reason or "refused by the media service"
            raise WhisprError(
                Reason.INVALID, f"attachment {attachment.id}: {reason}", field="attachments"
            )


SERVICE = media_pb2.DESCRIPTOR.services_by_name["MediaService"].full_name
STUB = media_pb2_grpc.MediaServiceStub
