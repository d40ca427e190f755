"""The control topic: orders from the server API to every node's gateway.

A backend's ``Disconnect`` or ``RevokeTokens`` call reaches one node; the connections it
concerns may be on any node. So the node that took the call publishes one event on the
broker's :data:`CONTROL_TOPIC`, which every node's gateway follows
(:mod:`whispr.gateway.sessions`), and each closes its own connections concerned. The topic
is not a client topic (the gateway lets clients join only ``user:``, ``conversation:`` and
``notification:`` topics), so no client can read or forge it.

A lost event (Redis away) loses a ``Disconnect`` (the caller may repeat it: closing is
idempotent), but not a revocation: each node also reads the new revocations from the store
every few seconds (:mod:`whispr.revocations`).
"""

from __future__ import annotations

from typing import Final

import msgspec

from whispr.revocations import Revocation

__all__ = ["CONTROL_TOPIC", "ControlEvent", "Disconnect", "Revoked", "decode", "encode"]

#: The broker topic of the control events.
CONTROL_TOPIC: Final = "control:sessions"


class Disconnect(msgspec.Struct, frozen=True, tag="disconnect"):
    """Close the connections of ``user_id`` (of its ``device_id`` alone when given)."""

    user_id: str
    device_id: str | None
    reason: str


class Revoked(msgspec.Struct, frozen=True, tag="revoked"):
    """A revocation was stored: take it in, close the connections whose token it revokes."""

    revocation: Revocation


ControlEvent = Disconnect | Revoked

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ControlEvent)


def encode(event: ControlEvent) -> bytes:
    """``event`` as published on :data:`CONTROL_TOPIC`."""
    return _encoder.encode(event)


def decode(data: bytes) -> ControlEvent:
    """An event read from :data:`CONTROL_TOPIC` (raises ``msgspec.DecodeError``)."""
    return _decoder.decode(data)
