"""The key directory's and the envelopes' records, one msgspec struct each.

Keys are bytes in the domain and in the stores; the WebSocket API carries them as standard
base64 (msgspec encodes and decodes ``bytes`` fields that way), gRPC as ``bytes``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "Bundle",
    "ClaimedBundle",
    "Device",
    "Envelope",
    "EnvelopeType",
    "KeyUpload",
    "OneTimePreKey",
    "SignedPreKey",
    "StoredEnvelope",
    "StoredKeys",
]

EnvelopeType = Literal["prekey", "message"]
"""A Signal ``PreKeySignalMessage`` (opens a session: X3DH header inside) or a ``SignalMessage``
(a session's next Double Ratchet message). The server only passes it on."""


class SignedPreKey(msgspec.Struct, frozen=True, kw_only=True):
    """A medium-term public key signed by the device's identity key (the signature checked by
    the server before it is stored). Also the shape of the post-quantum last-resort key,
    whose ``public_key`` is an opaque KEM public key."""

    key_id: int
    public_key: bytes
    signature: bytes


class OneTimePreKey(msgspec.Struct, frozen=True, kw_only=True):
    """A public key handed out once, in one bundle, then forgotten by the server."""

    key_id: int
    public_key: bytes


class Device(msgspec.Struct, frozen=True, kw_only=True):
    """One registered device of a user: what ``list_devices`` answers.

    ``registration_id`` changes when the device is reinstalled (its sessions are then stale:
    senders must fetch its bundle again). ``identity_key`` is None until keys are uploaded.
    """

    user_id: str
    device_id: str
    registration_id: int
    name: str
    created_at: float
    identity_key: bytes | None = None
    #: One-time prekeys left on the server for this device.
    one_time_prekeys: int = 0
    signed_prekey_id: int | None = None


class KeyUpload(msgspec.Struct, frozen=True, kw_only=True):
    """What a device publishes (``upload_keys``): each part optional, checked as a whole."""

    identity_key: bytes | None = None
    signed_prekey: SignedPreKey | None = None
    one_time_prekeys: tuple[OneTimePreKey, ...] = ()
    #: PQXDH's last-resort KEM prekey (opaque to the server), signed like the signed prekey.
    kem_prekey: SignedPreKey | None = None


class Bundle(msgspec.Struct, frozen=True, kw_only=True):
    """One device's keys for starting a session with it (``get_bundles`` answers one per
    device). ``one_time_prekey`` is None when the device has none left: X3DH then runs on the
    signed prekey alone."""

    user_id: str
    device_id: str
    registration_id: int
    identity_key: bytes
    signed_prekey: SignedPreKey
    one_time_prekey: OneTimePreKey | None = None
    kem_prekey: SignedPreKey | None = None


class Envelope(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One device's ciphertext of a message, as the sender gives it.

    ``registration_id`` is the recipient device's as the sender knows it: a different current
    one means the sender's session is stale (``stale_devices``).
    """

    user_id: str
    device_id: str
    registration_id: int
    type: EnvelopeType
    ciphertext: bytes


class StoredEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    """An envelope as its recipient device receives it: with a message, live or on catch-up."""

    type: EnvelopeType
    ciphertext: bytes


class StoredKeys(msgspec.Struct, frozen=True, kw_only=True):
    """What storing an upload changed: the identity key before it, the one-time prekeys now."""

    previous_identity: bytes | None
    one_time_prekeys: int


class ClaimedBundle(msgspec.Struct, frozen=True, kw_only=True):
    """One device's bundle as a fetch claimed it, and its one-time prekeys left after."""

    bundle: Bundle
    remaining: int
