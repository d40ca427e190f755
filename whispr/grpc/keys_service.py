"""The ``whispr.keys.v1.KeyDirectory`` servicer: the end-to-end key directory for services.

The calls mirror the ``user:<id>`` events of ``whispr/gateway/channels/keys.py`` and call the
same :class:`~actors.e2e.directory.KeyDirectory`, and ``SendEndToEndMessage`` the same
``Messaging.send`` as ``send_message`` with envelopes (one device check for both);
authentication, status codes, audit records and metrics are the messaging API's, through
the same :func:`~whispr.grpc.service.rpc`.
A calling service acts for the user (and device) each request names.
"""

from __future__ import annotations

from typing import Final

from actors.conversation import Draft
from actors.e2e.directory import KeyDirectory
from actors.e2e.model import (
    Bundle,
    Device,
    Envelope,
    EnvelopeType,
    KeyUpload,
    OneTimePreKey,
    SignedPreKey,
)
from actors.errors import Reason, WhisprError
from whispr.grpc.convert import struct_to_dict
from whispr.grpc.gen.whispr.keys.v1 import keys_pb2 as pb
from whispr.grpc.gen.whispr.keys.v1 import keys_pb2_grpc as pb_grpc
from whispr.grpc.service import ServedOverMessaging, required, rpc

__all__ = ["KEY_DIRECTORY_SERVICE", "KeyDirectoryServicer"]

KEY_DIRECTORY_SERVICE: Final = pb.DESCRIPTOR.services_by_name["KeyDirectory"].full_name


class KeyDirectoryServicer(ServedOverMessaging, pb_grpc.KeyDirectoryServicer):
    """The key directory over one node's :class:`Messaging` (its ``e2e``)."""

    @property
    def directory(self) -> KeyDirectory:
        directory = self.messaging.e2e
        if directory is None:
            raise WhisprError(Reason.UNAVAILABLE, "the key directory is not running")
        return directory

    @rpc("RegisterDevice")
    async def RegisterDevice(self, caller: str, request: pb.RegisterDeviceRequest) -> pb.Device:
        device = await self.directory.register_device(
            required(request.user_id, "user_id"),
            required(request.device_id, "device_id"),
            request.registration_id,
            request.name,
        )
        return _device_to_pb(device)

    @rpc("ListDevices")
    async def ListDevices(
        self, caller: str, request: pb.ListDevicesRequest
    ) -> pb.ListDevicesResponse:
        devices = await self.directory.list_devices(required(request.user_id, "user_id"))
        return pb.ListDevicesResponse(devices=[_device_to_pb(d) for d in devices])

    @rpc("RemoveDevice")
    async def RemoveDevice(
        self, caller: str, request: pb.RemoveDeviceRequest
    ) -> pb.RemoveDeviceResponse:
        await self.directory.remove_device(
            required(request.user_id, "user_id"), required(request.device_id, "device_id")
        )
        return pb.RemoveDeviceResponse()

    @rpc("UploadKeys")
    async def UploadKeys(self, caller: str, request: pb.UploadKeysRequest) -> pb.UploadKeysResponse:
        upload = KeyUpload(
            identity_key=request.identity_key if request.HasField("identity_key") else None,
            signed_prekey=_signed(request, "signed_prekey"),
            one_time_prekeys=tuple(
                OneTimePreKey(key_id=k.key_id, public_key=k.public_key)
                for k in request.one_time_prekeys
            ),
            kem_prekey=_signed(request, "kem_prekey"),
        )
        left = await self.directory.upload_keys(
            required(request.user_id, "user_id"), required(request.device_id, "device_id"), upload
        )
        return pb.UploadKeysResponse(one_time_prekeys=left)

    @rpc("GetBundles")
    async def GetBundles(self, caller: str, request: pb.GetBundlesRequest) -> pb.GetBundlesResponse:
        bundles = await self.directory.get_bundles(
            required(request.user_id, "user_id"), list(request.device_ids) or None
        )
        return pb.GetBundlesResponse(bundles=[_bundle_to_pb(b) for b in bundles])

    @rpc("SendEndToEndMessage")
    async def SendEndToEndMessage(
        self, caller: str, request: pb.SendEndToEndMessageRequest
    ) -> pb.SendEndToEndMessageResponse:
        draft = Draft(
            client_id=required(request.client_id, "client_id"),
            metadata={**struct_to_dict(request.metadata), "e2e": True},
            envelopes=tuple(_envelope(e) for e in request.envelopes),
            blind_tokens=tuple(request.blind_tokens),
        )
        message = await self.messaging.send(
            required(request.user_id, "user_id"),
            required(request.conversation_id, "conversation_id"),
            draft,
            device_id=required(request.device_id, "device_id"),
        )
        return pb.SendEndToEndMessageResponse(
            id=message.id, seq=message.seq, created_at=message.created_at
        )


_ENVELOPE_TYPES: Final[dict[int, EnvelopeType]] = {
    pb.ENVELOPE_TYPE_PREKEY: "prekey",
    pb.ENVELOPE_TYPE_MESSAGE: "message",
}


def _envelope(envelope: pb.Envelope) -> Envelope:
    kind = _ENVELOPE_TYPES.get(envelope.type)
    if kind is None:
        raise WhisprError(
            Reason.INVALID, "an envelope's type is PREKEY or MESSAGE", field="envelopes"
        )
    return Envelope(
        user_id=envelope.user_id,
        device_id=envelope.device_id,
        registration_id=envelope.registration_id,
        type=kind,
        ciphertext=envelope.ciphertext,
    )


def _signed(request: pb.UploadKeysRequest, name: str) -> SignedPreKey | None:
    if not request.HasField(name):
        return None
    key = getattr(request, name)
    return SignedPreKey(key_id=key.key_id, public_key=key.public_key, signature=key.signature)


def _signed_to_pb(key: SignedPreKey) -> pb.SignedPreKey:
    return pb.SignedPreKey(key_id=key.key_id, public_key=key.public_key, signature=key.signature)


def _device_to_pb(device: Device) -> pb.Device:
    out = pb.Device(
        user_id=device.user_id,
        device_id=device.device_id,
        registration_id=device.registration_id,
        name=device.name,
        created_at=device.created_at,
        identity_key=device.identity_key or b"",
        one_time_prekeys=device.one_time_prekeys,
    )
    if device.signed_prekey_id is not None:
        out.signed_prekey_id = device.signed_prekey_id
    return out


def _bundle_to_pb(bundle: Bundle) -> pb.Bundle:
    out = pb.Bundle(
        user_id=bundle.user_id,
        device_id=bundle.device_id,
        registration_id=bundle.registration_id,
        identity_key=bundle.identity_key,
        signed_prekey=_signed_to_pb(bundle.signed_prekey),
    )
    if bundle.one_time_prekey is not None:
        out.one_time_prekey.CopyFrom(
            pb.OneTimePreKey(
                key_id=bundle.one_time_prekey.key_id,
                public_key=bundle.one_time_prekey.public_key,
            )
        )
    if bundle.kem_prekey is not None:
        out.kem_prekey.CopyFrom(_signed_to_pb(bundle.kem_prekey))
    return out
