"""Clients of the sibling services Whispr calls: user, notification, media, moderation.

Each client has a deadline per call, retries of idempotent calls (gRPC's retry
policy), a circuit breaker, metrics, and a documented fallback for when its
sibling is not configured or does not answer (docs/siblings.md):

- :class:`~whispr.siblings.user.UserDirectory`: is a user active (fallback: yes);
- :class:`~whispr.siblings.media.MediaValidator`: is an attachment real
  (not configured: local checks only; down: the message is refused, retry);
- :class:`~whispr.siblings.moderation.Moderator`: may content be posted
  (fail open or closed, configurable);
- :class:`~whispr.siblings.notification.Notifier`: push requests, through an
  outbox with retries (nothing dropped silently).

:class:`Siblings` holds the four for one node; the node's ``siblings`` service
opens and closes it.
"""

from __future__ import annotations

import structlog

from whispr.config import Settings
from whispr.siblings import media, moderation, notification, user
from whispr.siblings.client import SiblingClient, SiblingUnavailable
from whispr.siblings.media import MediaValidator
from whispr.siblings.metrics import SiblingMetrics, sibling_metrics
from whispr.siblings.moderation import Moderator
from whispr.siblings.notification import Notifier, PushRequest
from whispr.siblings.user import UserDirectory

__all__ = [
    "MediaValidator",
    "Moderator",
    "Notifier",
    "PushRequest",
    "SiblingClient",
    "SiblingUnavailable",
    "Siblings",
    "UserDirectory",
]

log = structlog.get_logger("whispr.siblings")

_FALLBACKS = {
    "user": "every user with a valid token counts as active",
    "notification": "no push requests are sent",
    "media": "attachments get the local metadata checks only",
    "moderation": "content is not checked",
}


class Siblings:
    """The node's clients of its sibling services."""

    def __init__(
        self,
        users: UserDirectory,
        media: MediaValidator,
        moderation: Moderator,
        notifier: Notifier,
    ) -> None:
        self.users = users
        self.media = media
        self.moderation = moderation
        self.notifier = notifier

    @classmethod
    def from_settings(cls, settings: Settings, metrics: SiblingMetrics | None = None) -> Siblings:
        metrics = metrics or sibling_metrics()

        def client(name: str, target: str | None, service: str, stub: object) -> SiblingClient:
            return SiblingClient(name, target, service, stub, settings, metrics)

        return cls(
            users=UserDirectory(
                client("user", settings.user_service_url, user.SERVICE, user.STUB),
                settings.user_active_cache_s,
            ),
            media=MediaValidator(
                client("media", settings.media_service_url, media.SERVICE, media.STUB)
            ),
            moderation=Moderator(
                client(
                    "moderation",
                    settings.moderation_service_url,
                    moderation.SERVICE,
                    moderation.STUB,
                ),
                fail_open=settings.moderation_policy == "fail_open",
            ),
            notifier=Notifier(
                client(
                    "notification",
                    settings.notification_service_url,
                    notification.SERVICE,
                    notification.STUB,
                )
            ),
        )

    def _clients(self) -> list[SiblingClient]:
        return [self.users.client, self.notifier.client, self.media.client, self.moderation.client]

    async def open(self) -> None:
        """Open a channel to each configured sibling; say at start which are not."""
        for client in self._clients():
            await client.open()
            if client.configured:
                log.info("sibling configured", sibling=client.sibling, target=client.target)
            else:
                log.info(
                    "sibling not configured",
                    sibling=client.sibling,
                    fallback=_FALLBACKS[client.sibling],
                )
        self.notifier.start()

    async def close(self) -> None:
        await self.notifier.close()
        for client in self._clients():
            await client.close()
