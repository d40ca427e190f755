"""``whispr.schedules.v1.ScheduledMessages`` over a real gRPC channel, on both stores.

The same operations as the WebSocket path (tests/gateway/test_scheduled.py), through the same
functions: a schedule is its author's alone, is sent as an ordinary message at its time,
refusals carry the WebSocket path's reasons, and ``set_disappearing`` needs the right.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest

from tests.gateway.conftest import unique
from tests.grpc.conftest import GrpcNode
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2 as mpb
from whispr.grpc.gen.whispr.schedules.v1 import schedules_pb2 as pb
from whispr.grpc.gen.whispr.schedules.v1 import schedules_pb2_grpc as pb_grpc


async def _refused(call: Any) -> tuple[grpc.StatusCode, dict[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = caught.value
    trailing = error.trailing_metadata() or ()
    return error.code(), {key: str(value) for key, value in trailing}


async def test_every_scheduling_call(grpc_node: GrpcNode, stub: Any) -> None:
    auth = grpc_node.auth()
    ada, bob = unique("ada"), unique("bob")
    created = await stub.CreateConversation(
        mpb.CreateConversationRequest(
            kind=mpb.CONVERSATION_KIND_GROUP, creator_id=ada, title="g", member_ids=[bob]
        ),
        metadata=auth,
    )
    cid = created.conversation.id
    async with grpc_node.channel() as channel:
        scheduled = pb_grpc.ScheduledMessagesStub(channel)
        send_at = time.time() + 1.0
        made = await scheduled.ScheduleMessage(
            pb.ScheduleMessageRequest(
                conversation_id=cid,
                user_id=ada,
                draft=pb.ScheduledDraft(client_id="s1", content="later"),
                send_at=send_at + 600,
            ),
            metadata=auth,
        )
        schedule = made.schedule
        assert (schedule.sender_id, schedule.draft.content) == (ada, "later")
        listed = await scheduled.ListScheduled(
            pb.ListScheduledRequest(conversation_id=cid, user_id=ada), metadata=auth
        )
        assert [s.id for s in listed.scheduled] == [schedule.id]
        # Only its author sees or changes it.
        code, trailing = await _refused(
            scheduled.CancelScheduled(
                pb.CancelScheduledRequest(
                    conversation_id=cid, user_id=bob, schedule_id=schedule.id
                ),
                metadata=auth,
            )
        )
        assert (code, trailing["whispr-reason"]) == (grpc.StatusCode.NOT_FOUND, "not_found")
        updated = await scheduled.UpdateScheduled(
            pb.UpdateScheduledRequest(
                conversation_id=cid, user_id=ada, schedule_id=schedule.id, send_at=send_at
            ),
            metadata=auth,
        )
        assert (updated.schedule.send_at, updated.schedule.draft.content) == (send_at, "later")
        for _ in range(100):
            page = await stub.ListMessages(
                mpb.ListMessagesRequest(conversation_id=cid), metadata=auth
            )
            texts = [m for m in page.messages if m.kind == "text"]
            if texts:
                break
            await asyncio.sleep(0.1)
        assert [(m.sender_id, m.content) for m in texts] == [(ada, "later")]
        assert texts[0].metadata["scheduled"]["id"] == schedule.id
        listed = await scheduled.ListScheduled(
            pb.ListScheduledRequest(conversation_id=cid, user_id=ada), metadata=auth
        )
        assert list(listed.scheduled) == []

        # Refusals name the field, as on the WebSocket path.
        code, trailing = await _refused(
            scheduled.ScheduleMessage(
                pb.ScheduleMessageRequest(
                    conversation_id=cid,
                    user_id=ada,
                    draft=pb.ScheduledDraft(client_id="s2", content="x", ttl=2**62),
                    send_at=send_at,
                ),
                metadata=auth,
            )
        )
        assert (code, trailing["whispr-reason"]) == (grpc.StatusCode.INVALID_ARGUMENT, "invalid")
        code, trailing = await _refused(
            scheduled.ScheduleMessage(
                pb.ScheduleMessageRequest(
                    conversation_id=cid,
                    user_id=unique("stranger"),
                    draft=pb.ScheduledDraft(client_id="s3", content="x"),
                    send_at=send_at,
                ),
                metadata=auth,
            )
        )
        assert trailing["whispr-reason"] == "not_member"

        # set_disappearing: the owner may, a plain member may not.
        code, trailing = await _refused(
            scheduled.SetDisappearing(
                pb.SetDisappearingRequest(conversation_id=cid, user_id=bob, seconds=60),
                metadata=auth,
            )
        )
        assert (trailing["whispr-reason"], trailing["whispr-right"]) == (
            "forbidden",
            "set_disappearing",
        )
        changed = await scheduled.SetDisappearing(
            pb.SetDisappearingRequest(conversation_id=cid, user_id=ada, seconds=60),
            metadata=auth,
        )
        assert changed.conversation.settings["disappearing_s"] == 60
