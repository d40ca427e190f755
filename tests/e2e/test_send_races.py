"""An end-to-end send racing a membership change, on both stores.

The device check reads the members, then the envelopes are stored, then the conversation's
actor takes the draft. A member added or removed in between must not get the message
without an envelope, and a send refused once its envelopes are stored must leave none
behind. The change is made at that exact point: the key directory below runs it once the
envelopes are stored, through the same ``Messaging`` calls a client makes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import cast

import pytest

from actors.conversation import Draft
from actors.e2e.directory import KeyDirectory
from actors.e2e.model import Envelope
from actors.e2e.ports import KeyStore
from actors.errors import Reason, WhisprError
from actors.ports import Store
from tests.actors.conftest import Stack, build_stack


class Interleaved(KeyDirectory):
    """The key directory, running ``between`` once, after a send's envelopes are stored."""

    between: Callable[[], Awaitable[None]] | None = None

    async def keep_envelopes(
        self, conversation_id: str, sender_id: str, client_id: str, envelopes: Sequence[Envelope]
    ) -> None:
        await super().keep_envelopes(conversation_id, sender_id, client_id, envelopes)
        hook, self.between = self.between, None
        if hook is not None:
            await hook()


async def _no_contacts(_user_id: str, _limit: int) -> list[str]:
    return []


@pytest.fixture
async def stack(store: Store) -> AsyncIterator[tuple[Stack, Interleaved]]:
    built = await build_stack(store)
    # Both stores implement the KeyStore port beside the Store one.
    directory = Interleaved(cast(KeyStore, store), built.broker, _no_contacts, lambda: 1_000.0)
    built.messaging.e2e = directory
    yield built, directory
    built.supervisor.stop(block=False)
    await built.supervisor.wait_exit()


def _envelope(user_id: str, device_id: str, registration_id: int) -> Envelope:
    return Envelope(
        user_id=user_id,
        device_id=device_id,
        registration_id=registration_id,
        type="message",
        ciphertext=b"sealed",
    )


def _draft(client_id: str, envelopes: Sequence[Envelope]) -> Draft:
    return Draft(client_id=client_id, metadata={"e2e": True}, envelopes=tuple(envelopes))


async def _group(stack: Stack, directory: Interleaved, *devices: tuple[str, str]) -> str:
    """alice's group with bob, every device named registered (registration id 7)."""
    for user_id, device_id in devices:
        await directory.register_device(user_id, device_id, 7, device_id)
    group = await stack.messaging.create_group("alice", "Team", ["bob"])
    return group.id


async def _waiting(directory: Interleaved, conversation_id: str, client_id: str) -> int:
    """How many of bob's b1 envelopes of alice's ``client_id`` are stored."""
    found = await directory.keys.device_envelopes(
        conversation_id, "bob", "b1", [("alice", client_id)], 1_000.0
    )
    return len(found)


async def test_a_member_added_during_the_send_gets_the_devices_checked_again(
    stack: tuple[Stack, Interleaved],
) -> None:
    built, directory = stack
    messaging = built.messaging
    devices = (("alice", "a1"), ("bob", "b1"), ("carol", "c1"))
    conversation_id = await _group(built, directory, *devices)

    async def add_carol() -> None:
        await messaging.add_members("alice", conversation_id, ["carol"])

    directory.between = add_carol
    with pytest.raises(WhisprError) as refused:
        await messaging.send(
            "alice", conversation_id, _draft("m1", [_envelope("bob", "b1", 7)]), device_id="a1"
        )
    assert refused.value.reason is Reason.MISMATCHED_DEVICES
    assert refused.value.details["missing"] == {"carol": ["c1"]}
    assert await built.store.find_by_client_id(conversation_id, "alice", "m1") is None
    assert await _waiting(directory, conversation_id, "m1") == 0
    # The client sends again with carol's envelope: every member's device has one.
    sent = await messaging.send(
        "alice",
        conversation_id,
        _draft("m1", [_envelope("bob", "b1", 7), _envelope("carol", "c1", 7)]),
        device_id="a1",
    )
    assert sent.seq > 0
    assert await _waiting(directory, conversation_id, "m1") == 1


async def test_a_member_without_devices_added_during_the_send_lets_it_through(
    stack: tuple[Stack, Interleaved],
) -> None:
    built, directory = stack
    messaging = built.messaging
    conversation_id = await _group(built, directory, ("alice", "a1"), ("bob", "b1"))

    async def add_dave() -> None:
        await messaging.add_members("alice", conversation_id, ["dave"])

    directory.between = add_dave
    sent = await messaging.send(
        "alice", conversation_id, _draft("m1", [_envelope("bob", "b1", 7)]), device_id="a1"
    )
    assert sent.seq > 0
    assert await _waiting(directory, conversation_id, "m1") == 1
    # dave (no device, nothing to encrypt for) was added before the message in its order.
    page = await built.store.page_messages(conversation_id, after_seq=0, limit=50)
    added = [m.seq for m in page if m.metadata.get("event") == "member_added"]
    assert added
    assert max(added) < sent.seq


async def test_a_send_refused_after_its_envelopes_were_stored_leaves_none(
    stack: tuple[Stack, Interleaved],
) -> None:
    built, directory = stack
    messaging = built.messaging
    conversation_id = await _group(built, directory, ("alice", "a1"), ("bob", "b1"))

    async def alice_leaves() -> None:
        await messaging.leave("alice", conversation_id)

    directory.between = alice_leaves
    with pytest.raises(WhisprError) as refused:
        await messaging.send(
            "alice", conversation_id, _draft("m1", [_envelope("bob", "b1", 7)]), device_id="a1"
        )
    assert refused.value.reason is Reason.NOT_MEMBER
    assert await built.store.find_by_client_id(conversation_id, "alice", "m1") is None
    assert await _waiting(directory, conversation_id, "m1") == 0
