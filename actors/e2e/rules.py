"""The key directory's and the envelopes' limits and checks: one place for each.

Every refusal is ``invalid`` naming the field (or ``too_large`` naming the limit), raised
before anything is read or written, so both stores see only values they hold alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from actors import rules
from actors.e2e.model import Envelope, KeyUpload, SignedPreKey
from actors.e2e.signatures import signed_prekey_message, verify
from actors.errors import Reason, WhisprError

__all__ = [
    "IDENTITY_KEY_BYTES",
    "MAX_BLIND_TOKENS",
    "MAX_CIPHERTEXT_BYTES",
    "MAX_DEVICES",
    "MAX_DEVICE_ID",
    "MAX_DEVICE_NAME",
    "MAX_ENVELOPES",
    "MAX_KEM_KEY_BYTES",
    "MAX_KEY_ID",
    "MAX_ONE_TIME_PREKEYS",
    "MAX_REGISTRATION_ID",
    "MAX_SEARCH_TOKENS",
    "PREKEY_BYTES",
    "SIGNATURE_BYTES",
    "check_blind_tokens",
    "check_device_id",
    "check_envelope_devices",
    "check_envelopes",
    "check_registration",
    "check_upload",
]

#: Devices one user may register (Signal allows a primary and a handful of linked ones).
MAX_DEVICES: Final = 10
#: The longest device id: the token's ``device`` claim is at most this long.
MAX_DEVICE_ID: Final = 128
MAX_DEVICE_NAME: Final = 100
#: Registration ids and key ids are unsigned 31-bit numbers (every store holds them alike).
MAX_REGISTRATION_ID: Final = 2**31 - 1
MAX_KEY_ID: Final = 2**31 - 1
IDENTITY_KEY_BYTES: Final = 32
PREKEY_BYTES: Final = 32
SIGNATURE_BYTES: Final = 64
#: A KEM public key (Kyber-1024's is 1568 bytes, with Signal's type byte 1569).
MAX_KEM_KEY_BYTES: Final = 2048
#: One-time prekeys one upload may carry, and a device may have on the server.
MAX_ONE_TIME_PREKEYS: Final = 100
#: Envelopes one message may carry: every device of a full group's members.
MAX_ENVELOPES: Final = rules.MAX_GROUP_MEMBERS * MAX_DEVICES
#: One envelope's ciphertext: a message's content, padded and with its headers.
MAX_CIPHERTEXT_BYTES: Final = 64 * 1024
#: Blind-index tokens one message may carry, and their size (an HMAC-SHA256, maybe truncated).
MAX_BLIND_TOKENS: Final = 64
MIN_TOKEN_BYTES: Final = 8
MAX_TOKEN_BYTES: Final = 64
#: Tokens one search may name (all must match).
MAX_SEARCH_TOKENS: Final = 16


def check_device_id(device_id: str, field: str = "device_id") -> None:
    """A device id as the stores hold it: 1 to :data:`MAX_DEVICE_ID` characters of text."""
    rules.check_text(device_id, field)
    if not device_id or len(device_id) > MAX_DEVICE_ID:
        raise WhisprError(
            Reason.INVALID, f"{field} must be 1 to {MAX_DEVICE_ID} characters", field=field
        )


def _check_range(value: int, low: int, high: int, field: str) -> None:
    if not low <= value <= high:
        raise WhisprError(Reason.INVALID, f"{field} must be {low} to {high}", field=field)


def check_registration(registration_id: int, name: str) -> None:
    """A device's registration id and name."""
    _check_range(registration_id, 1, MAX_REGISTRATION_ID, "registration_id")
    rules.check_text(name, "name")
    if len(name) > MAX_DEVICE_NAME:
        raise WhisprError(
            Reason.INVALID, f"name has at most {MAX_DEVICE_NAME} characters", field="name"
        )


def _check_bytes(value: bytes, low: int, high: int, field: str) -> None:
    if not low <= len(value) <= high:
        size = f"{low}" if low == high else f"{low} to {high}"
        raise WhisprError(Reason.INVALID, f"{field} must be {size} bytes", field=field)


def _check_signed(key: SignedPreKey, identity_key: bytes, field: str, *, kem: bool) -> None:
    _check_range(key.key_id, 0, MAX_KEY_ID, field)
    if kem:
        _check_bytes(key.public_key, 1, MAX_KEM_KEY_BYTES, field)
        message = key.public_key
    else:
        _check_bytes(key.public_key, PREKEY_BYTES, PREKEY_BYTES, field)
        message = signed_prekey_message(key.public_key)
    _check_bytes(key.signature, SIGNATURE_BYTES, SIGNATURE_BYTES, field)
    if not verify(identity_key, message, key.signature):
        raise WhisprError(
            Reason.INVALID,
            f"{field}: the signature does not verify against the identity key",
            field=field,
        )


def check_upload(upload: KeyUpload, stored_identity: bytes | None) -> bytes:
    """Check an upload against the identity key it brings or the one stored; returns the
    identity key the signatures were checked with.

    A signed key (prekey, KEM prekey) needs an identity key: the upload's, else the stored one.
    """
    identity = upload.identity_key if upload.identity_key is not None else stored_identity
    if upload.identity_key is not None:
        _check_bytes(upload.identity_key, IDENTITY_KEY_BYTES, IDENTITY_KEY_BYTES, "identity_key")
    elif upload.signed_prekey is None and upload.kem_prekey is None and not upload.one_time_prekeys:
        raise WhisprError(Reason.INVALID, "the upload names no key", field="identity_key")
    if identity is None:
        raise WhisprError(
            Reason.INVALID,
            "upload the identity key first (with a signed prekey)",
            field="identity_key",
        )
    # A new identity key makes the old signed keys worthless: a signed prekey must come with it.
    new_identity = upload.identity_key is not None and upload.identity_key != stored_identity
    if new_identity and upload.signed_prekey is None:
        raise WhisprError(
            Reason.INVALID,
            "a new identity key needs a signed prekey signed by it",
            field="signed_prekey",
        )
    if upload.signed_prekey is not None:
        _check_signed(upload.signed_prekey, identity, "signed_prekey", kem=False)
    if upload.kem_prekey is not None:
        _check_signed(upload.kem_prekey, identity, "kem_prekey", kem=True)
    if len(upload.one_time_prekeys) > MAX_ONE_TIME_PREKEYS:
        raise WhisprError(
            Reason.TOO_LARGE,
            f"at most {MAX_ONE_TIME_PREKEYS} one-time prekeys per upload",
            field="one_time_prekeys",
            limit=MAX_ONE_TIME_PREKEYS,
        )
    seen: set[int] = set()
    for key in upload.one_time_prekeys:
        _check_range(key.key_id, 0, MAX_KEY_ID, "one_time_prekeys")
        _check_bytes(key.public_key, PREKEY_BYTES, PREKEY_BYTES, "one_time_prekeys")
        if key.key_id in seen:
            raise WhisprError(
                Reason.INVALID,
                f"one-time prekey id {key.key_id} given twice",
                field="one_time_prekeys",
            )
        seen.add(key.key_id)
    return identity


def check_envelopes(envelopes: Sequence[Envelope]) -> None:
    """The envelopes' shapes: sizes, ids, one per device."""
    if len(envelopes) > MAX_ENVELOPES:
        raise WhisprError(
            Reason.TOO_LARGE,
            f"at most {MAX_ENVELOPES} envelopes per message",
            field="envelopes",
            limit=MAX_ENVELOPES,
        )
    seen: set[tuple[str, str]] = set()
    for envelope in envelopes:
        rules.check_user_ids([envelope.user_id], "envelopes")
        check_device_id(envelope.device_id, "envelopes")
        _check_range(envelope.registration_id, 1, MAX_REGISTRATION_ID, "envelopes")
        _check_bytes(envelope.ciphertext, 1, MAX_CIPHERTEXT_BYTES, "envelopes")
        key = (envelope.user_id, envelope.device_id)
        if key in seen:
            raise WhisprError(
                Reason.INVALID,
                f"two envelopes for device {envelope.device_id} of {envelope.user_id}",
                field="envelopes",
            )
        seen.add(key)


def check_envelope_devices(
    envelopes: Sequence[Envelope],
    devices: Mapping[str, Mapping[str, int]],
    sender: tuple[str, str],
) -> None:
    """Refuse a send whose envelopes do not match the members' current devices.

    ``devices``: every member's registered devices (user -> device -> registration id).
    Every one of them but the sending device must have an envelope, and no other device
    may: else ``mismatched_devices`` with ``missing`` and ``extra`` (user -> device ids), so
    the client fetches the missing bundles, drops the extra sessions and retries. An
    envelope for a device whose registration id changed is ``stale_devices``
    (``stale``: user -> device ids): the client fetches its bundle again.
    """
    given = {(e.user_id, e.device_id): e.registration_id for e in envelopes}
    expected = {
        (user_id, device_id): registration
        for user_id, by_device in devices.items()
        for device_id, registration in by_device.items()
        if (user_id, device_id) != sender
    }
    missing = _grouped(k for k in expected if k not in given)
    extra = _grouped(k for k in given if k not in expected)
    if missing or extra:
        raise WhisprError(
            Reason.MISMATCHED_DEVICES,
            "the envelopes do not match the members' devices",
            missing=missing,
            extra=extra,
        )
    stale = _grouped(k for k, registration in given.items() if expected[k] != registration)
    if stale:
        raise WhisprError(Reason.STALE_DEVICES, "some devices were registered again", stale=stale)


def _grouped(keys: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for user_id, device_id in sorted(keys):
        out.setdefault(user_id, []).append(device_id)
    return out


def check_blind_tokens(tokens: Sequence[bytes], field: str, limit: int) -> None:
    """Blind-index tokens: at most ``limit``, each :data:`MIN_TOKEN_BYTES` to
    :data:`MAX_TOKEN_BYTES` bytes."""
    if len(tokens) > limit:
        raise WhisprError(Reason.TOO_LARGE, f"at most {limit} {field}", field=field, limit=limit)
    for token in tokens:
        _check_bytes(token, MIN_TOKEN_BYTES, MAX_TOKEN_BYTES, field)
