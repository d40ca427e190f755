"""Every number a client gives, at any size, is answered: accepted or refused, never a crash.

Numbers reach the stores as 64-bit integers; anything outside that range (or negative where
a seq is meant) must be refused as ``invalid`` naming the field before a store sees it, on
both stores alike, and the conversation's actor must carry on serving afterwards.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.conversation import Draft
from actors.errors import Reason, WhisprError
from tests.actors.conftest import Stack

#: Numbers at and around every boundary, and anything in between.
NUMBERS = st.one_of(
    st.sampled_from([0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30]),
    st.integers(min_value=-(2**70), max_value=2**70),
)

#: What a refusal may say for a number: out of range, or no message has that seq.
ANSWERS = {Reason.INVALID, Reason.NOT_FOUND}

OPERATIONS = [
    "history_before",
    "history_after",
    "history_limit",
    "mark_read",
    "mark_delivered",
    "edit",
    "delete",
    "hide",
    "react",
    "pin",
    "reply_to",
]


async def _call(stack: Stack, conversation_id: str, operation: str, n: int) -> Any:
    m = stack.messaging
    match operation:
        case "history_before":
            return await m.history("alice", conversation_id, before_seq=n)
        case "history_after":
            return await m.history("alice", conversation_id, after_seq=n)
        case "history_limit":
            return await m.history("alice", conversation_id, limit=n)
        case "mark_read":
            return await m.mark_read("alice", conversation_id, n)
        case "mark_delivered":
            return await m.mark_delivered("alice", "phone", conversation_id, n)
        case "edit":
            return await m.edit("alice", conversation_id, n, "changed")
        case "delete":
            return await m.delete("alice", conversation_id, n)
        case "hide":
            return await m.hide("alice", conversation_id, n)
        case "react":
            return await m.react("alice", conversation_id, n, "👍")
        case "pin":
            return await m.pin("alice", conversation_id, n)
        case "reply_to":
            draft = Draft(client_id=f"reply-{n}", content="re", reply_to=n)
            return await m.send("alice", conversation_id, draft)
    raise AssertionError(operation)


def _examples(count: int) -> list[int]:
    """``count`` numbers drawn by hypothesis from :data:`NUMBERS` (boundaries first)."""
    drawn: list[int] = []

    @settings(max_examples=count, deadline=None, database=None)
    @given(n=NUMBERS)
    def draw(n: int) -> None:
        drawn.append(n)

    draw()
    return drawn


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_any_number_is_accepted_or_refused_cleanly(stack: Stack, operation: str) -> None:
    # The calls need the stack's event loop, so hypothesis draws the numbers and the test
    # makes the calls; a failure names the operation and the number.
    group = await stack.messaging.create_group("alice", "Numbers", ["bob"])
    await stack.messaging.send("alice", group.id, Draft(client_id="first", content="hi"))
    wrong: list[tuple[int, WhisprError]] = []
    for n in _examples(40):
        try:
            await _call(stack, group.id, operation, n)
        except WhisprError as exc:
            in_range = 0 <= n <= 2**63 - 1
            if exc.reason not in ANSWERS or (not in_range and exc.reason is not Reason.INVALID):
                wrong.append((n, exc))
    assert wrong == [], operation
    # The conversation's actor is still there and serving.
    sent = await stack.messaging.send("alice", group.id, Draft(client_id="last", content="ok"))
    assert sent.seq >= 2
