"""``KeyDirectory``: devices and their public keys, handed out honestly.

The rules of Signal-Server's key and device controllers, over the :class:`KeyStore` port:

- a user registers each device (its id is the one its token names: a device registers
  itself), lists them and removes one; removal drops its keys and the envelopes waiting for
  it, and its owner and every user sharing a conversation with them get ``devices_changed``;
- a device uploads its identity key, a signed prekey (and a post-quantum last-resort KEM
  prekey), each signature checked against the identity key before anything is stored
  (actors/e2e/rules.py), and batches of one-time prekeys;
- a bundle fetch answers one bundle per device of the user, each with one one-time prekey
  claimed for this fetch alone (the store deletes it as it reads it), or none when none is
  left; a device left with fewer than ``prekeys_low`` is told to upload more
  (``prekeys_low`` on its owner's ``user:`` topic);
- a device's new identity key tells its owner and everyone sharing a conversation with them
  (``identity_changed``): their clients show the safety-number change.

Events go on ``user:<id>`` topics, where every device of the user hears them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from actors import rules
from actors.broker import Broker
from actors.e2e import rules as e2e_rules
from actors.e2e.model import Bundle, Device, Envelope, KeyUpload
from actors.e2e.ports import KeyStore
from actors.errors import Reason, WhisprError
from actors.events import encode_event, user_topic

__all__ = [
    "CONTACTS_TOLD",
    "ENVELOPE_TTL_S",
    "PREKEYS_LOW",
    "SIGNED_PREKEY_GRACE_S",
    "KeyDirectory",
]

#: Below this many one-time prekeys left, the device is told to upload more.
PREKEYS_LOW: Final = 10
#: How long a superseded signed prekey stays stored after a rotation.
SIGNED_PREKEY_GRACE_S: Final = 30 * 86400.0
#: How long an envelope waits for its device before the sweep deletes it.
ENVELOPE_TTL_S: Final = 30 * 86400.0
#: Users sharing a conversation with a device's owner told of its changes, at most.
CONTACTS_TOLD: Final = 5000
#: Seconds between two sweeps of expired envelopes (run beside a send, at most this often).
SWEEP_INTERVAL_S: Final = 60.0
SWEEP_BATCH: Final = 1000


class KeyDirectory:
    """The key directory of one node; thread: the node's event loop."""

    def __init__(
        self,
        keys: KeyStore,
        broker: Broker,
        contacts: Callable[[str, int], Awaitable[list[str]]],
        clock: Callable[[], float],
        *,
        disconnect: Callable[[str, str], None] | None = None,
        prekeys_low: int = PREKEYS_LOW,
        signed_prekey_grace_s: float = SIGNED_PREKEY_GRACE_S,
        envelope_ttl_s: float = ENVELOPE_TTL_S,
    ) -> None:
        self.keys = keys
        self.broker = broker
        self._contacts = contacts
        self.clock = clock
        #: Closes a removed device's connections on every node (the control topic).
        self._disconnect = disconnect
        self.prekeys_low = prekeys_low
        self.signed_prekey_grace_s = signed_prekey_grace_s
        self.envelope_ttl_s = envelope_ttl_s
        self._swept_at = 0.0

    # -- devices --------------------------------------------------------------------------

    async def register_device(
        self, user_id: str, device_id: str, registration_id: int, name: str
    ) -> Device:
        """Register (or register again) the caller's own device."""
        rules.check_user_ids([user_id], "user_id")
        e2e_rules.check_device_id(device_id)
        e2e_rules.check_registration(registration_id, name)
        device = Device(
            user_id=user_id,
            device_id=device_id,
            registration_id=registration_id,
            name=name,
            created_at=self.clock(),
        )
        before = await self.keys.register_device(device, e2e_rules.MAX_DEVICES)
        if before is None:
            await self._tell_contacts(
                user_id,
                "devices_changed",
                {"user_id": user_id, "device_id": device_id, "change": "added"},
            )
        elif before.registration_id != registration_id:
            await self._tell_contacts(
                user_id,
                "devices_changed",
                {"user_id": user_id, "device_id": device_id, "change": "registered_again"},
            )
        found = await self.keys.list_devices([user_id])
        return next(d for d in found if d.device_id == device_id)

    async def list_devices(self, user_id: str) -> list[Device]:
        rules.check_user_ids([user_id], "user_id")
        return await self.keys.list_devices([user_id])

    async def remove_device(
        self, user_id: str, device_id: str, *, by_device: str | None = None
    ) -> None:
        """Remove one of the user's devices; ``not_found`` if it is not registered.

        Its connections on every node are closed (but the caller's own, which hears the
        reply): a removed device receives nothing more.
        """
        rules.check_user_ids([user_id], "user_id")
        e2e_rules.check_device_id(device_id)
        if not await self.keys.remove_device(user_id, device_id):
            raise WhisprError(Reason.NOT_FOUND, f"no device {device_id}", field="device_id")
        if self._disconnect is not None and device_id != by_device:
            self._disconnect(user_id, device_id)
        await self._tell_contacts(
            user_id,
            "devices_changed",
            {"user_id": user_id, "device_id": device_id, "change": "removed"},
        )

    # -- keys -----------------------------------------------------------------------------

    async def upload_keys(self, user_id: str, device_id: str, upload: KeyUpload) -> int:
        """Store a device's keys (signatures checked first); the one-time prekeys it has now."""
        rules.check_user_ids([user_id], "user_id")
        e2e_rules.check_device_id(device_id)
        stored_identity = await self._identity_of(user_id, device_id)
        e2e_rules.check_upload(upload, stored_identity)
        stored = await self.keys.store_keys(
            user_id, device_id, upload, self.clock(), self.signed_prekey_grace_s
        )
        identity = upload.identity_key
        if (
            identity is not None
            and stored.previous_identity is not None
            and identity != stored.previous_identity
        ):
            await self._tell_contacts(
                user_id,
                "identity_changed",
                {"user_id": user_id, "device_id": device_id, "identity_key": identity},
            )
        return stored.one_time_prekeys

    async def _identity_of(self, user_id: str, device_id: str) -> bytes | None:
        for device in await self.keys.list_devices([user_id]):
            if device.device_id == device_id:
                return device.identity_key
        raise WhisprError(Reason.NOT_FOUND, "register this device first", field="device_id")

    async def get_bundles(
        self, user_id: str, device_ids: Sequence[str] | None = None
    ) -> list[Bundle]:
        """One bundle per device of ``user_id`` (or of the devices named), each with its own
        one-time prekey if one is left; the owner is told when a device runs low."""
        rules.check_user_ids([user_id], "user_id")
        if device_ids is not None:
            if len(device_ids) > e2e_rules.MAX_DEVICES:
                raise WhisprError(
                    Reason.INVALID,
                    f"at most {e2e_rules.MAX_DEVICES} device ids",
                    field="device_ids",
                )
            for device_id in device_ids:
                e2e_rules.check_device_id(device_id, "device_ids")
        claimed = await self.keys.claim_bundles(user_id, device_ids)
        for entry in claimed:
            if entry.remaining < self.prekeys_low:
                payload = {
                    "device_id": entry.bundle.device_id,
                    "remaining": entry.remaining,
                    "threshold": self.prekeys_low,
                }
                self.broker.publish(user_topic(user_id), encode_event("prekeys_low", payload))
        return [entry.bundle for entry in claimed]

    # -- envelopes ------------------------------------------------------------------------

    async def check_envelopes(
        self,
        sender_id: str,
        sender_device: str | None,
        member_ids: Sequence[str],
        envelopes: Sequence[Envelope],
    ) -> None:
        """Refuse envelopes that do not match the members' current devices (see
        :func:`actors.e2e.rules.check_envelope_devices`); the sending device must be
        registered."""
        e2e_rules.check_envelopes(envelopes)
        devices: dict[str, dict[str, int]] = {}
        for device in await self.keys.list_devices(member_ids):
            devices.setdefault(device.user_id, {})[device.device_id] = device.registration_id
        if sender_device is None or sender_device not in devices.get(sender_id, {}):
            raise WhisprError(
                Reason.FORBIDDEN,
                "register this device (register_device) before sending envelopes",
                field="device_id",
            )
        e2e_rules.check_envelope_devices(envelopes, devices, (sender_id, sender_device))

    async def keep_envelopes(
        self, conversation_id: str, sender_id: str, client_id: str, envelopes: Sequence[Envelope]
    ) -> None:
        """Store a message's envelopes (before the message); sweep expired ones at times."""
        now = self.clock()
        await self.keys.put_envelopes(
            conversation_id, sender_id, client_id, envelopes, now + self.envelope_ttl_s
        )
        if now - self._swept_at >= SWEEP_INTERVAL_S:
            self._swept_at = now
            await self.keys.purge_envelopes(now, SWEEP_BATCH)

    # -- events ---------------------------------------------------------------------------

    async def _tell_contacts(self, user_id: str, name: str, payload: dict[str, Any]) -> None:
        """``name`` on the user's own topic and on each of their contacts'."""
        data = encode_event(name, payload)
        self.broker.publish(user_topic(user_id), data)
        for contact in await self._contacts(user_id, CONTACTS_TOLD):
            if contact != user_id:
                self.broker.publish(user_topic(contact), data)
