"""``Schedules``: a member's scheduled messages, and what a scheduler does when a timer is due.

The API the gateway and gRPC call (``schedule_message``, ``list_scheduled``,
``update_scheduled``, ``cancel_scheduled``) and the two jobs of the node's scheduler
(``whispr/scheduler.py``): :meth:`Schedules.dispatch` sends a due schedule, and
:meth:`Schedules.expire` ends a disappearing message. The records and rules are
:mod:`actors.scheduling`; the durable queues, ``actors.ports.ScheduleStore``.

A schedule is checked as a send would be when it is made (the author may post, the draft
is valid) and sent through ``Messaging.send`` when it is due, so the author's right to post
is asked again then: an author removed meanwhile, or a group now closed to members' posts,
does not post, and the author is told (``schedule_failed`` on ``user:<id>``). A schedule is
someone else's business only to its author: any other user asking about it gets
``not_found``, as for a schedule that does not exist.

Every schedule change and every new due time is announced on the broker's
:data:`~actors.scheduling.SCHEDULER_TOPIC`, so the scheduler of every node re-arms its one
timer if the new time comes first: no node polls the queues.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec
import structlog

from actors import rules, scheduling
from actors.errors import Reason, WhisprError
from actors.events import conversation_topic, encode_event, user_topic
from actors.messaging import Messaging
from actors.model import Attachment, Draft, Message, MessageKind
from actors.ports import ScheduleStore
from actors.scheduling import (
    MAX_PENDING_SCHEDULES,
    SCHEDULER_TOPIC,
    Expiry,
    Schedule,
    check_send_at,
    dispatch_client_id,
    schedule_id_for,
    scheduled_mark,
    timer_event,
)

__all__ = ["ScheduleChanges", "Schedules"]

log = structlog.get_logger("whispr.schedules")


class ScheduleChanges(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What ``update_scheduled`` changes: a field left out stays as it is; the message's
    fields replace the scheduled draft's (its client id stays)."""

    send_at: float | msgspec.UnsetType = msgspec.UNSET
    kind: MessageKind | msgspec.UnsetType = msgspec.UNSET
    content: str | msgspec.UnsetType = msgspec.UNSET
    attachments: tuple[Attachment, ...] | msgspec.UnsetType = msgspec.UNSET
    reply_to: int | msgspec.UnsetType | None = msgspec.UNSET
    metadata: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    ttl: int | msgspec.UnsetType | None = msgspec.UNSET

    def draft_changes(self) -> dict[str, Any]:
        """The draft's fields named by this change."""
        names = ("kind", "content", "attachments", "reply_to", "metadata", "ttl")
        return {n: v for n in names if (v := getattr(self, n)) is not msgspec.UNSET}


class Schedules:
    """Scheduled messages over ``messaging`` and the durable queues of ``store``."""

    def __init__(
        self,
        messaging: Messaging,
        store: ScheduleStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.messaging = messaging
        self.store = store
        self.clock = clock

    # -- the author's API ----------------------------------------------------------------

    async def schedule(
        self, user_id: str, conversation_id: str, draft: Draft, send_at: object
    ) -> Schedule:
        """Keep ``draft`` to be sent at ``send_at``; idempotent by the draft's client id (a
        retry answers the schedule made the first time)."""
        now = self.clock()
        at = check_send_at(send_at, now)
        self._check_draft(draft)
        await self.messaging.check_can_post(user_id, conversation_id)
        pending = await self.store.list_schedules(conversation_id, user_id)
        for existing in pending:
            if existing.draft.client_id == draft.client_id:
                return existing
        if len(pending) >= MAX_PENDING_SCHEDULES:
            raise WhisprError(
                Reason.INVALID,
                f"at most {MAX_PENDING_SCHEDULES} scheduled messages per member and conversation",
                field="send_at",
                limit=MAX_PENDING_SCHEDULES,
            )
        kept = await self.store.add_schedule(
            Schedule(
                id=schedule_id_for(conversation_id, user_id, draft.client_id),
                conversation_id=conversation_id,
                sender_id=user_id,
                draft=draft,
                send_at=at,
                created_at=now,
            )
        )
        self._announce(kept.send_at)
        return kept

    async def pending(self, user_id: str, conversation_id: str) -> list[Schedule]:
        """The user's pending schedules in a conversation they are in, by ``send_at``."""
        await self.messaging.conversation_at(user_id, conversation_id)
        return await self.store.list_schedules(conversation_id, user_id)

    async def update(
        self, user_id: str, conversation_id: str, schedule_id: str, changes: ScheduleChanges
    ) -> Schedule:
        """Change one's own schedule before it is sent (``conflict`` once it is being sent).

        The changes are checked before the schedule is looked up, so a bad value is
        ``invalid`` naming its field whether or not the schedule exists."""
        send_at = None
        if changes.send_at is not msgspec.UNSET:
            send_at = check_send_at(changes.send_at, self.clock())
        fields = changes.draft_changes()
        if isinstance(content := fields.get("content"), str):
            rules.check_content(content, self.messaging.deps.max_content_bytes)
        if isinstance(ttl := fields.get("ttl"), int):
            scheduling.check_ttl(ttl)
        if isinstance(metadata := fields.get("metadata"), dict):
            scheduling.check_no_reserved_metadata(metadata)
        current = await self._own(user_id, conversation_id, schedule_id)
        draft = None
        if fields:
            draft = msgspec.structs.replace(current.draft, **fields)
            self._check_draft(draft)
        if draft is None and send_at is None:
            raise WhisprError(Reason.INVALID, "name at least one field to change")
        await self.messaging.check_can_post(user_id, conversation_id)
        updated = await self.store.update_schedule(schedule_id, draft=draft, send_at=send_at)
        self._announce(updated.send_at)
        return updated

    async def cancel(self, user_id: str, conversation_id: str, schedule_id: str) -> None:
        """Drop one's own schedule before it is sent (``conflict`` once it is being sent)."""
        await self._own(user_id, conversation_id, schedule_id)
        await self.store.cancel_schedule(schedule_id)

    # -- the scheduler's jobs --------------------------------------------------------------

    async def dispatch(self, schedule: Schedule) -> Message | None:
        """Send a claimed schedule now, as its author, and drop it; the message, or None when
        it was refused for good (its author is told why).

        ``unavailable`` is raised, leaving the schedule claimed: its lease runs out and a
        scheduler sends it again, with the same client id, so a message written before the
        failure is found rather than written twice.
        """
        now = self.clock()
        draft = msgspec.structs.replace(schedule.draft, client_id=dispatch_client_id(schedule.id))
        try:
            message = await self.messaging.send(
                schedule.sender_id,
                schedule.conversation_id,
                draft,
                scheduled=scheduled_mark(schedule, now),
            )
        except WhisprError as error:
            if error.reason is Reason.UNAVAILABLE:
                raise
            await self.store.finish_schedule(schedule.id)
            self._failed(schedule, error)
            return None
        await self.store.finish_schedule(schedule.id)
        return message

    async def expire(self, expiry: Expiry) -> None:
        """End a claimed disappearing message: the store's stub, the event, then the queue's
        entry (a failure before the last leaves it to be done again, which repeats only the
        event)."""
        conversation_id, seq = expiry.conversation_id, expiry.seq
        await self.messaging.deps.store.expire_message(conversation_id, seq)
        payload = {"conversation_id": conversation_id, "seq": seq}
        self.messaging.deps.broker.publish(
            conversation_topic(conversation_id), encode_event("message_expired", payload)
        )
        await self.store.finish_expiry(conversation_id, seq)

    # -- plumbing ------------------------------------------------------------------------

    def _check_draft(self, draft: Draft) -> None:
        if draft.envelopes or draft.blind_tokens or draft.metadata.get("e2e") is True:
            # Envelopes are made for the devices the members have now; by the send time
            # they may have others, and the server cannot re-encrypt.
            raise WhisprError(
                Reason.INVALID,
                "an end-to-end message cannot be scheduled: its envelopes are for today's devices",
                field="envelopes",
            )
        rules.check_draft(draft, self.messaging.deps.max_content_bytes)
        rules.check_metadata(draft.metadata)
        if draft.reply_to is not None:
            rules.check_position(draft.reply_to, "reply_to")

    async def _own(self, user_id: str, conversation_id: str, schedule_id: str) -> Schedule:
        rules.check_text(schedule_id, "schedule_id")
        found = None
        if 0 < len(schedule_id) <= rules.MAX_ID:
            found = await self.store.get_schedule(schedule_id)
        if found is None or found.sender_id != user_id or found.conversation_id != conversation_id:
            raise WhisprError(Reason.NOT_FOUND, "no such scheduled message", field="schedule_id")
        return found

    def _announce(self, at: float) -> None:
        self.messaging.deps.broker.publish(SCHEDULER_TOPIC, timer_event(at))

    def _failed(self, schedule: Schedule, error: WhisprError) -> None:
        log.info(
            "scheduled message refused",
            schedule_id=schedule.id,
            conversation_id=schedule.conversation_id,
            reason=error.reason.value,
        )
        payload = {
            "schedule_id": schedule.id,
            "conversation_id": schedule.conversation_id,
            **error.to_payload(),
        }
        self.messaging.deps.broker.publish(
            user_topic(schedule.sender_id), encode_event("schedule_failed", payload)
        )
