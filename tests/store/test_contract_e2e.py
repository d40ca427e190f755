"""The end-to-end ``KeyStore`` contract on both stores (actors/e2e/ports.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors.e2e.model import Device, Envelope, KeyUpload, OneTimePreKey, SignedPreKey
from actors.errors import Reason, WhisprError

pytestmark = pytest.mark.timeout(60)


def _device(user: str, device: str, registration: int = 7) -> Device:
    return Device(
        user_id=user, device_id=device, registration_id=registration, name="", created_at=1.0
    )


def _upload(n: int) -> KeyUpload:
    return KeyUpload(
        identity_key=b"i" * 32,
        signed_prekey=SignedPreKey(key_id=1, public_key=b"s" * 32, signature=b"g" * 64),
        one_time_prekeys=tuple(
            OneTimePreKey(key_id=i, public_key=bytes([i]) * 32) for i in range(1, n + 1)
        ),
    )


async def test_each_one_time_prekey_is_claimed_once(store: Any) -> None:
    await store.register_device(_device("u", "d1"), 10)
    await store.register_device(_device("u", "d2"), 10)
    for device in ("d1", "d2"):
        stored = await store.store_keys("u", device, _upload(5), 1.0, 10.0)
        assert stored.one_time_prekeys == 5
    results = await asyncio.gather(*(store.claim_bundles("u", None) for _ in range(8)))
    keys = [
        (c.bundle.device_id, c.bundle.one_time_prekey.key_id)
        for batch in results
        for c in batch
        if c.bundle.one_time_prekey is not None
    ]
    assert len(keys) == 10
    assert len(set(keys)) == 10
    empty = await store.claim_bundles("u", ["d1"])
    assert [c.bundle.one_time_prekey for c in empty] == [None]
    assert empty[0].remaining == 0
    assert empty[0].bundle.signed_prekey.key_id == 1


async def test_devices_are_bounded_and_removal_takes_keys_and_envelopes(store: Any) -> None:
    for i in range(3):
        assert await store.register_device(_device("u", f"d{i}"), 3) is None
    with pytest.raises(WhisprError) as refused:
        await store.register_device(_device("u", "d9"), 3)
    assert refused.value.reason is Reason.CONFLICT
    await store.store_keys("u", "d0", _upload(2), 1.0, 10.0)
    envelope = Envelope(
        user_id="u", device_id="d0", registration_id=7, type="prekey", ciphertext=b"x"
    )
    await store.put_envelopes("c", "s", "k", [envelope], 100.0)
    found = await store.device_envelopes("c", "u", "d0", [("s", "k")], 1.0)
    assert found[("s", "k")].ciphertext == b"x"
    assert await store.device_envelopes("c", "u", "d0", [("s", "k")], 100.0) == {}
    assert await store.remove_device("u", "d0")
    assert not await store.remove_device("u", "d0")
    assert await store.device_envelopes("c", "u", "d0", [("s", "k")], 1.0) == {}
    assert await store.claim_bundles("u", None) == []


async def test_a_new_registration_id_drops_the_old_install(store: Any) -> None:
    await store.register_device(_device("u", "d"), 10)
    await store.store_keys("u", "d", _upload(3), 1.0, 10.0)
    before = await store.register_device(_device("u", "d", registration=8), 10)
    assert before is not None
    assert before.registration_id == 7
    [device] = await store.list_devices(["u"])
    assert device.registration_id == 8
    assert device.one_time_prekeys == 0
    assert device.signed_prekey_id is None


async def test_a_signed_key_id_is_never_reused_for_another_key(store: Any) -> None:
    await store.register_device(_device("u", "d"), 10)
    await store.store_keys("u", "d", _upload(0), 1.0, 10.0)
    other = KeyUpload(
        signed_prekey=SignedPreKey(key_id=1, public_key=b"t" * 32, signature=b"g" * 64)
    )
    with pytest.raises(WhisprError) as refused:
        await store.store_keys("u", "d", other, 2.0, 10.0)
    assert refused.value.reason is Reason.CONFLICT
    rotated = KeyUpload(
        signed_prekey=SignedPreKey(key_id=2, public_key=b"t" * 32, signature=b"g" * 64)
    )
    await store.store_keys("u", "d", rotated, 2.0, 10.0)
    [claimed] = await store.claim_bundles("u", None)
    assert claimed.bundle.signed_prekey.key_id == 2
