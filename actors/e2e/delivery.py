"""Each device receives its own envelope: live from the event, on catch-up from the store.

A message sent end to end is stored without content; its envelopes (one per device) travel
in its live ``new_message`` event and wait in the store for their devices. A follower that is
a registered device gets the message with ``envelope`` set to its own ciphertext (or None:
the device was added after the message, or has acknowledged it already); it never sees
another device's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from actors.e2e.model import Envelope, StoredEnvelope
from actors.e2e.ports import KeyStore
from actors.events import BrokerEvent
from actors.model import Message

__all__ = ["DeviceMessage", "attach_envelopes", "is_e2e", "live_frame"]


class DeviceMessage(Message, frozen=True, kw_only=True):
    """A message as one device receives it: with that device's envelope, if it has one."""

    envelope: StoredEnvelope | None = None


class _LiveE2E(msgspec.Struct):
    message: dict[str, Any]


_decode_live = msgspec.json.Decoder(_LiveE2E).decode
_decode_envelopes = msgspec.json.Decoder(list[Envelope]).decode
#: The last event's envelopes by device: decoded once per node, however many followers.
_last: tuple[bytes | None, dict[tuple[str, str], dict[str, Any]]] = (None, {})


def is_e2e(message: Message) -> bool:
    """Whether the message was sent end to end (``metadata.e2e``)."""
    return bool(message.metadata.get("e2e"))


def live_frame(event: BrokerEvent, user_id: str, device_id: str) -> dict[str, Any]:
    """The ``new_message`` payload one device receives for an end-to-end event."""
    global _last
    cached, by_device = _last
    if cached is not event.envelopes:
        by_device = {
            (e.user_id, e.device_id): {"type": e.type, "ciphertext": e.ciphertext}
            for e in _decode_envelopes(event.envelopes)
        }
        _last = (event.envelopes, by_device)
    message = _decode_live(event.payload).message
    message["envelope"] = by_device.get((user_id, device_id))
    return {"message": message}


async def attach_envelopes(
    keys: KeyStore,
    conversation_id: str,
    user_id: str,
    device_id: str,
    page: Sequence[Message],
    now: float,
) -> list[Message]:
    """A page read from the store, its end-to-end messages with this device's envelopes."""
    wanted = [(m.sender_id, m.client_id) for m in page if is_e2e(m)]
    if not wanted:
        return list(page)
    found = await keys.device_envelopes(conversation_id, user_id, device_id, wanted, now)
    out: list[Message] = []
    for m in page:
        if is_e2e(m):
            fields = msgspec.structs.asdict(m)
            out.append(DeviceMessage(**fields, envelope=found.get((m.sender_id, m.client_id))))
        else:
            out.append(m)
    return out
