"""The envelope check and the signature check, for any devices and any envelopes."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from actors.e2e import rules
from actors.e2e.model import Envelope, KeyUpload, SignedPreKey
from actors.e2e.signatures import signed_prekey_message, verify
from actors.errors import Reason, WhisprError

_users = st.sampled_from(["u1", "u2", "u3"])
_devices = st.sampled_from(["d1", "d2", "d3"])
_registrations = st.integers(1, 3)
_directory = st.dictionaries(_users, st.dictionaries(_devices, _registrations, max_size=3))
_given = st.dictionaries(st.tuples(_users, _devices), _registrations, max_size=9)


@given(_directory, _given, st.tuples(_users, _devices))
def test_a_send_is_refused_exactly_when_the_devices_do_not_match(
    devices: dict[str, dict[str, int]], given_: dict[tuple[str, str], int], sender: tuple[str, str]
) -> None:
    envelopes = [
        Envelope(user_id=u, device_id=d, registration_id=r, type="message", ciphertext=b"x")
        for (u, d), r in given_.items()
    ]
    expected = {(u, d): r for u, by in devices.items() for d, r in by.items() if (u, d) != sender}
    missing = set(expected) - set(given_)
    extra = set(given_) - set(expected)
    stale = {k for k in set(given_) & set(expected) if given_[k] != expected[k]}
    if not missing and not extra and not stale:
        rules.check_envelope_devices(envelopes, devices, sender)  # accepted
        return
    with pytest.raises(WhisprError) as refused:
        rules.check_envelope_devices(envelopes, devices, sender)
    details = refused.value.details
    if missing or extra:
        assert refused.value.reason is Reason.MISMATCHED_DEVICES
        assert _pairs(details["missing"]) == missing
        assert _pairs(details["extra"]) == extra
    else:
        assert refused.value.reason is Reason.STALE_DEVICES
        assert _pairs(details["stale"]) == stale


def _pairs(grouped: dict[str, list[str]]) -> set[tuple[str, str]]:
    return {(user, device) for user, devices in grouped.items() for device in devices}


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=64, max_size=64))
def test_a_signature_not_made_by_the_identity_key_never_verifies(
    public_key: bytes, signature: bytes
) -> None:
    identity = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    assert not verify(identity, signed_prekey_message(public_key), signature)


def test_an_upload_is_checked_before_anything_is_stored() -> None:
    identity = Ed25519PrivateKey.generate()
    key = b"\x07" * 32
    good = SignedPreKey(
        key_id=1, public_key=key, signature=identity.sign(signed_prekey_message(key))
    )
    identity_key = identity.public_key().public_bytes_raw()
    assert rules.check_upload(KeyUpload(identity_key=identity_key, signed_prekey=good), None)
    for upload, field in [
        (KeyUpload(identity_key=b"short", signed_prekey=good), "identity_key"),
        (KeyUpload(identity_key=identity_key), "signed_prekey"),  # a new identity needs one
        (
            KeyUpload(
                identity_key=identity_key,
                signed_prekey=SignedPreKey(key_id=2**63, public_key=key, signature=good.signature),
            ),
            "signed_prekey",
        ),
        (
            KeyUpload(
                identity_key=identity_key,
                signed_prekey=SignedPreKey(
                    key_id=1,
                    public_key=key,
                    signature=identity.sign(key),  # not 0x05 || key
                ),
            ),
            "signed_prekey",
        ),
        (KeyUpload(signed_prekey=good), "identity_key"),  # no identity key at all
    ]:
        with pytest.raises(WhisprError) as refused:
            rules.check_upload(upload, None)
        assert refused.value.reason is Reason.INVALID
        assert refused.value.details["field"] == field
