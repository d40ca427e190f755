"""Every RPC of ``whispr.keys.v1.KeyDirectory`` over a real socket, on the embedded node and
on PostgreSQL and Redis: the same rules as the ``user:`` events (docs/e2e.md)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from actors.e2e.signatures import signed_prekey_message
from tests.gateway.conftest import unique
from tests.grpc.conftest import GrpcNode
from whispr.grpc.gen.whispr.keys.v1 import keys_pb2 as pb
from whispr.grpc.gen.whispr.keys.v1 import keys_pb2_grpc as pb_grpc
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2 as mpb
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2_grpc as mpb_grpc

AUTH = GrpcNode.auth()


@pytest.fixture
async def keys(grpc_node: GrpcNode) -> AsyncIterator[Any]:
    async with grpc_node.channel() as channel:
        yield pb_grpc.KeyDirectoryStub(channel)


async def _refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def _x25519() -> bytes:
    return X25519PrivateKey.generate().public_key().public_bytes_raw()


async def test_register_upload_fetch_and_remove(keys: Any) -> None:
    user = unique("ada")
    identity = Ed25519PrivateKey.generate()
    identity_key = identity.public_key().public_bytes_raw()
    spk = _x25519()
    device = await keys.RegisterDevice(
        pb.RegisterDeviceRequest(user_id=user, device_id="d1", registration_id=42, name="phone"),
        metadata=AUTH,
    )
    assert (device.device_id, device.registration_id, device.identity_key) == ("d1", 42, b"")
    signed = pb.SignedPreKey(
        key_id=1, public_key=spk, signature=identity.sign(signed_prekey_message(spk))
    )
    kem = b"k" * 1568
    upload = pb.UploadKeysRequest(
        user_id=user,
        device_id="d1",
        identity_key=identity_key,
        signed_prekey=signed,
        one_time_prekeys=[pb.OneTimePreKey(key_id=i, public_key=_x25519()) for i in (1, 2)],
        kem_prekey=pb.SignedPreKey(key_id=1, public_key=kem, signature=identity.sign(kem)),
    )
    assert (await keys.UploadKeys(upload, metadata=AUTH)).one_time_prekeys == 2

    forged = pb.UploadKeysRequest(
        user_id=user,
        device_id="d1",
        signed_prekey=pb.SignedPreKey(key_id=2, public_key=spk, signature=b"\x01" * 64),
    )
    error = await _refused(keys.UploadKeys(forged, metadata=AUTH))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert ("whispr-field", "signed_prekey") in tuple(error.trailing_metadata())

    seen = []
    for _ in range(3):
        [bundle] = (
            await keys.GetBundles(pb.GetBundlesRequest(user_id=user), metadata=AUTH)
        ).bundles
        assert bundle.identity_key == identity_key
        assert bundle.signed_prekey.public_key == spk
        assert bundle.kem_prekey.public_key == kem
        seen.append(bundle.one_time_prekey.key_id if bundle.HasField("one_time_prekey") else None)
    assert sorted(seen, key=str) == [1, 2, None]

    [listed] = (await keys.ListDevices(pb.ListDevicesRequest(user_id=user), metadata=AUTH)).devices
    assert (listed.signed_prekey_id, listed.one_time_prekeys) == (1, 0)
    await keys.RemoveDevice(pb.RemoveDeviceRequest(user_id=user, device_id="d1"), metadata=AUTH)
    assert not (await keys.ListDevices(pb.ListDevicesRequest(user_id=user), metadata=AUTH)).devices
    error = await _refused(
        keys.RemoveDevice(pb.RemoveDeviceRequest(user_id=user, device_id="d1"), metadata=AUTH)
    )
    assert error.code() is grpc.StatusCode.NOT_FOUND


async def test_refusals_name_the_field(keys: Any) -> None:
    user = unique("ada")
    error = await _refused(
        keys.RegisterDevice(
            pb.RegisterDeviceRequest(user_id=user, device_id="d", registration_id=2**31),
            metadata=AUTH,
        )
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert ("whispr-field", "registration_id") in tuple(error.trailing_metadata())
    error = await _refused(
        keys.UploadKeys(
            pb.UploadKeysRequest(user_id=user, device_id="nope", identity_key=b"i" * 32),
            metadata=AUTH,
        )
    )
    assert error.code() is grpc.StatusCode.NOT_FOUND
    error = await _refused(keys.GetBundles(pb.GetBundlesRequest(user_id="\x00"), metadata=AUTH))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_end_to_end_send_checks_devices_as_the_websocket_send(grpc_node: GrpcNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    async with grpc_node.channel() as channel:
        keys = pb_grpc.KeyDirectoryStub(channel)
        messaging = mpb_grpc.MessagingServiceStub(channel)
        for user, device in ((ada, "a1"), (ada, "a2"), (bob, "b1")):
            await keys.RegisterDevice(
                pb.RegisterDeviceRequest(user_id=user, device_id=device, registration_id=7),
                metadata=AUTH,
            )
        created = await messaging.CreateConversation(
            mpb.CreateConversationRequest(
                kind=mpb.CONVERSATION_KIND_GROUP, creator_id=ada, title="g", member_ids=[bob]
            ),
            metadata=AUTH,
        )
        cid = created.conversation.id

        def envelope(user: str, device: str, registration: int = 7) -> pb.Envelope:
            return pb.Envelope(
                user_id=user,
                device_id=device,
                registration_id=registration,
                type=pb.ENVELOPE_TYPE_MESSAGE,
                ciphertext=f"for {device}".encode(),
            )

        def send(*envelopes: pb.Envelope, client_id: str = "m1") -> Any:
            return keys.SendEndToEndMessage(
                pb.SendEndToEndMessageRequest(
                    conversation_id=cid,
                    client_id=client_id,
                    user_id=ada,
                    device_id="a1",
                    envelopes=envelopes,
                ),
                metadata=AUTH,
            )

        error = await _refused(send(envelope(bob, "b1"), envelope(bob, "ghost")))
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        trailing = dict(error.trailing_metadata() or ())
        assert trailing["whispr-reason"] == "mismatched_devices"
        assert json.loads(trailing["whispr-missing"]) == {ada: ["a2"]}
        assert json.loads(trailing["whispr-extra"]) == {bob: ["ghost"]}
        error = await _refused(send(envelope(ada, "a2"), envelope(bob, "b1", registration=8)))
        trailing = dict(error.trailing_metadata() or ())
        assert trailing["whispr-reason"] == "stale_devices"
        assert json.loads(trailing["whispr-stale"]) == {bob: ["b1"]}
        for bad in (
            pb.Envelope(user_id=bob, device_id="b1", registration_id=7, ciphertext=b"x"),
            envelope(bob, "b1", registration=2**32 - 1),
            pb.Envelope(user_id=bob, device_id="\x00", registration_id=7, type=1, ciphertext=b"x"),
        ):
            error = await _refused(send(envelope(ada, "a2"), bad))
            assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert ("whispr-field", "envelopes") in tuple(error.trailing_metadata() or ())
        listed = await messaging.ListMessages(
            mpb.ListMessagesRequest(conversation_id=cid), metadata=AUTH
        )
        assert [m.kind for m in listed.messages] == []

        async with grpc_node.running.client(bob, "b1") as b1:
            await b1.join(f"conversation:{cid}")
            sent = await send(envelope(ada, "a2"), envelope(bob, "b1"))
            event = await b1.next_event(f"conversation:{cid}", timeout=10)
            while event.event != "new_message":  # presence first
                event = await b1.next_event(f"conversation:{cid}", timeout=10)
            message = event.payload["message"]
            assert message["seq"] == sent.seq
            assert message["content"] == ""
            assert base64.b64decode(message["envelope"]["ciphertext"]) == b"for b1"
        again = await send(envelope(ada, "a2"), envelope(bob, "b1"))  # a retry: the original
        assert (again.id, again.seq) == (sent.id, sent.seq)
