"""``user:<id>`` events of the end-to-end key directory (actors/e2e/directory.py).

Registered on the user channel's event table (:func:`register`). Keys travel as standard
base64 strings. The device a call registers or uploads for is the connection's own (its
token's ``device`` claim): a device speaks for itself only.

- ``register_device`` (``registration_id``, ``name``): ``{"device"}``.
- ``list_devices``: ``{"devices"}``, the user's own.
- ``remove_device`` (``device_id``): ``{"device_id"}``; that device's connections close.
- ``upload_keys`` (:class:`~actors.e2e.model.KeyUpload`): ``{"one_time_prekeys"}`` left.
- ``get_bundles`` (``user_id``, optional ``device_ids``): ``{"bundles"}``; rate limited per
  requester (``bundle_fetch``, whispr/gateway/limits.py).
"""

from __future__ import annotations

from typing import Any

import msgspec

from actors.e2e.directory import KeyDirectory
from actors.e2e.model import KeyUpload, OneTimePreKey, SignedPreKey
from actors.errors import Reason, WhisprError
from actors.messaging import Messaging
from whispr.gateway.channels.base import Channel, EventTable, Payload, Reply

__all__ = [
    "GetBundles",
    "ListDevices",
    "RegisterDevice",
    "RemoveDevice",
    "UploadKeys",
    "directory_of",
    "register",
]


class RegisterDevice(Payload):
    """``register_device``: this connection's device, with its registration id and a name."""

    registration_id: int
    name: str = ""


class ListDevices(Payload):
    """``list_devices``: no fields."""


class RemoveDevice(Payload):
    """``remove_device``: one of the user's devices (this one included)."""

    device_id: str


class UploadKeys(Payload):
    """``upload_keys``: any of the identity key, a signed prekey, one-time prekeys and a
    post-quantum last-resort KEM prekey (base64), for this connection's device."""

    identity_key: bytes | None = None
    signed_prekey: SignedPreKey | None = None
    one_time_prekeys: tuple[OneTimePreKey, ...] = ()
    kem_prekey: SignedPreKey | None = None


class GetBundles(Payload):
    """``get_bundles``: a bundle per device of ``user_id`` (or of ``device_ids``)."""

    user_id: str
    device_ids: tuple[str, ...] | None = None


def directory_of(messaging: Messaging) -> KeyDirectory:
    """The node's key directory (the HTTP API's device routes use it too), or ``invalid``
    on a node that serves no end-to-end keys."""
    directory = messaging.e2e
    if directory is None:
        raise WhisprError(Reason.INVALID, "end-to-end keys are not served here")
    return directory


def _directory(channel: Channel) -> KeyDirectory:
    return directory_of(channel.host.ctx.messaging)


def _builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)


async def register_device(channel: Channel, p: RegisterDevice, _event: str) -> Reply:
    host = channel.host
    device = await _directory(channel).register_device(
        host.user_id, host.identity.device_id, p.registration_id, p.name
    )
    return {"device": _builtins(device)}


async def list_devices(channel: Channel, _p: ListDevices, _event: str) -> Reply:
    devices = await _directory(channel).list_devices(channel.host.user_id)
    return {"devices": _builtins(devices)}


async def remove_device(channel: Channel, p: RemoveDevice, _event: str) -> Reply:
    host = channel.host
    await _directory(channel).remove_device(
        host.user_id, p.device_id, by_device=host.identity.device_id
    )
    return {"device_id": p.device_id}


async def upload_keys(channel: Channel, p: UploadKeys, _event: str) -> Reply:
    host = channel.host
    upload = KeyUpload(
        identity_key=p.identity_key,
        signed_prekey=p.signed_prekey,
        one_time_prekeys=p.one_time_prekeys,
        kem_prekey=p.kem_prekey,
    )
    left = await _directory(channel).upload_keys(host.user_id, host.identity.device_id, upload)
    return {"one_time_prekeys": left}


async def get_bundles(channel: Channel, p: GetBundles, _event: str) -> Reply:
    bundles = await _directory(channel).get_bundles(p.user_id, p.device_ids)
    return {"bundles": _builtins(bundles)}


def register(table: EventTable[Any]) -> None:
    """Add this module's events to a channel kind's table (the user channel's)."""
    table.on("register_device", RegisterDevice)(register_device)
    table.on("list_devices", ListDevices)(list_devices)
    table.on("remove_device", RemoveDevice)(remove_device)
    table.on("upload_keys", UploadKeys)(upload_keys)
    table.on("get_bundles", GetBundles)(get_bundles)
