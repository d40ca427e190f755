"""``/api/v1/devices`` and ``/api/v1/users/{user_id}/bundles``: the end-to-end key directory.

Each route is the user channel's event (``register_device``, ``list_devices``,
``remove_device``, ``upload_keys``, ``get_bundles``; ``whispr/gateway/channels/keys.py``)
with its payload struct, calling the same :class:`~actors.e2e.directory.KeyDirectory`
(docs/e2e.md). As on the socket, the device a call registers or uploads keys for is the
token's own (its ``device`` claim): a device speaks for itself only; a user lists and removes
only their own devices. Bundle fetches count against the ``bundle_fetch`` limit, one budget
with the socket's: each may claim a one-time prekey of every device of a user.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Router, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_204_NO_CONTENT

from actors.e2e.model import Bundle, Device, KeyUpload
from whispr.auth import Identity
from whispr.gateway.channels.keys import RegisterDevice, UploadKeys, directory_of
from whispr.http.context import HttpContext
from whispr.http.problems import problems
from whispr.http.routes.common import WRITE_PROBLEMS, counted

__all__ = ["BundleList", "DeviceList", "KeysLeft", "router"]

_READ_PROBLEMS = problems(400, 401, 404, 429, 503)


class DeviceList(msgspec.Struct, kw_only=True):
    """The user's registered devices."""

    devices: list[Device]


class KeysLeft(msgspec.Struct, kw_only=True):
    """How many one-time prekeys the device has now."""

    one_time_prekeys: int


class BundleList(msgspec.Struct, kw_only=True):
    """A key bundle per device of the user (each with one of its one-time prekeys, if any
    is left: the fetch claims it)."""

    bundles: list[Bundle]


@put("/devices", summary="Register this device", responses=WRITE_PROBLEMS)
async def register_device(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    data: JSONBody[RegisterDevice],
) -> Device:
    """Register (or register again) the token's device, with its registration id and a
    name."""
    return await directory_of(ctx.messaging).register_device(
        identity.user_id, identity.device_id, data.registration_id, data.name
    )


@get("/devices", summary="List one's devices", responses=_READ_PROBLEMS)
async def list_devices(
    ctx: NamedDependency[HttpContext], identity: NamedDependency[Identity]
) -> DeviceList:
    """The user's own registered devices."""
    devices = await directory_of(ctx.messaging).list_devices(identity.user_id)
    return DeviceList(devices=devices)


@delete(
    "/devices/{device_id:str}",
    summary="Remove one of one's devices",
    status_code=HTTP_204_NO_CONTENT,
    responses=WRITE_PROBLEMS,
)
async def remove_device(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    device_id: FromPath[str],
) -> None:
    """Remove one of the user's devices (the token's own included); its connections
    close."""
    await directory_of(ctx.messaging).remove_device(
        identity.user_id, device_id, by_device=identity.device_id
    )


@post(
    "/devices/keys", summary="Upload this device's keys", status_code=200, responses=WRITE_PROBLEMS
)
async def upload_keys(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    data: JSONBody[UploadKeys],
) -> KeysLeft:
    """Store any of the token's device's identity key, signed prekey, one-time prekeys and
    last-resort KEM prekey (base64; signatures checked)."""
    upload = KeyUpload(
        identity_key=data.identity_key,
        signed_prekey=data.signed_prekey,
        one_time_prekeys=data.one_time_prekeys,
        kem_prekey=data.kem_prekey,
    )
    left = await directory_of(ctx.messaging).upload_keys(
        identity.user_id, identity.device_id, upload
    )
    return KeysLeft(one_time_prekeys=left)


@get("/users/{user_id:str}/bundles", summary="Fetch a user's key bundles", responses=_READ_PROBLEMS)
async def get_bundles(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    user_id: FromPath[str],
    device_ids: Annotated[
        list[str] | None, QueryParameter(description="Only these devices (repeated).")
    ] = None,
) -> BundleList:
    """A bundle per device of ``user_id`` (or of ``device_ids``), to start sessions with;
    rate limited per requester (``bundle_fetch``)."""
    await counted(ctx, identity, "user", "get_bundles")
    bundles = await directory_of(ctx.messaging).get_bundles(
        user_id, None if device_ids is None else tuple(device_ids)
    )
    return BundleList(bundles=bundles)


router = Router(
    "/",
    route_handlers=[register_device, list_devices, remove_device, upload_keys, get_bundles],
    tags=["devices"],
)
