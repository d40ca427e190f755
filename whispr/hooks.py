"""Where the sibling services meet the messaging core: three hooks, built from one node.

- :func:`screen`: before a member's message is accepted, its attachments are validated by the
  media service and its content checked by the moderation service. Local rules (size,
  attachment metadata) run first, so nothing obviously invalid costs a call. Content a
  client encrypted end to end (``metadata["e2e"]``) is ciphertext: it is not sent to
  moderation.
- :class:`PushDispatcher`: after a message is durable, a push request goes to the
  notification service for each member who wants one (:func:`actors.rules.push_recipients`)
  and has no device connected anywhere (:meth:`~whispr.gateway.presence.Presence.online`).
  Requests carry metadata only, never content. When presence cannot answer, every
  recipient counts as offline: a push too many beats a message nobody hears of.
- The gateway asks :meth:`~whispr.siblings.UserDirectory.is_active` at connect.

Each hook is None when the siblings it needs are not configured, so a node without them
pays nothing on the hot path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import structlog

from actors import rules
from actors.conversation import Draft
from actors.model import Conversation, Member, Message
from whispr.gateway.presence import Presence
from whispr.siblings import Siblings
from whispr.siblings.notification import PushRequest

__all__ = ["PushDispatcher", "Screen", "screen_for"]

log = structlog.get_logger("whispr.hooks")

Screen = Callable[[str, str, Draft], Awaitable[None]]


def screen_for(siblings: Siblings, max_content_bytes: int) -> Screen | None:
    """The check a member's draft passes before it is sent, or None when nothing is configured."""
    media, moderation = siblings.media, siblings.moderation
    if not media.configured and not moderation.configured:
        return None

    async def screen(user_id: str, conversation_id: str, draft: Draft) -> None:
        rules.check_content(draft.content, max_content_bytes)
        content = "\u2026" if draft.envelopes and draft.kind == "text" else draft.content
        rules.check_attachments(draft.kind, content, draft.attachments)
        if media.configured:
            for attachment in draft.attachments:
                await media.validate(attachment, user_id)
        if moderation.configured and draft.content and not draft.metadata.get("e2e"):
            await moderation.check(user_id, conversation_id, draft.content, draft.kind)

    return screen


class PushDispatcher:
    """Push requests for new messages to members with no device connected."""

    def __init__(
        self,
        siblings: Siblings,
        presence: Callable[[], Presence | None],
        clock: Callable[[], float],
    ) -> None:
        self.notifier = siblings.notifier
        self._presence = presence
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    def on_new_message(
        self, conversation: Conversation, members: Mapping[str, Member], message: Message
    ) -> None:
        """The conversation actor's hook: decide now, ask presence and push in a task."""
        recipients = rules.push_recipients(members, message, self._clock())
        if not recipients:
            return
        task = asyncio.get_running_loop().create_task(
            self._push(conversation, message, recipients), name="push-dispatch"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _push(self, conversation: Conversation, message: Message, users: list[str]) -> None:
        presence = self._presence()
        online: set[str] = set()
        if presence is not None:
            try:
                online = await presence.online(users)
            except Exception as exc:  # counted as offline: see the module's docstring
                log.warning("presence unavailable for pushes", error=str(exc))
        for user_id in users:
            if user_id in online:
                continue
            self.notifier.push(
                PushRequest(
                    request_id=f"{message.id}:{user_id}",
                    user_id=user_id,
                    conversation_id=message.conversation_id,
                    message_id=message.id,
                    seq=message.seq,
                    sender_id=message.sender_id,
                    kind=message.kind,
                    sent_at=message.created_at,
                    title=conversation.title,
                )
            )

    async def drain(self, timeout: float) -> None:
        """Wait for the dispatches under way (on stop), at most ``timeout`` seconds."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
