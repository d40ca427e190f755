"""A Signal-protocol device for the tests: X3DH (``x3dh``) and the Double Ratchet
(``doubleratchet``), talking to Whispr's key directory and envelopes over a PhoenixClient.

The identity key is published in its Ed25519 form (``IdentityKeyFormat.ED_25519``) and the
signed prekey's signature covers ``0x05 || key``: the scheme the server checks
(actors/e2e/signatures.py). Nothing here is the server's: it is what a real client does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import msgspec
import x3dh
from doubleratchet import DoubleRatchet, EncryptedMessage
from doubleratchet import Header as RatchetHeader
from doubleratchet.recommended import (
    HashFunction,
    aead_aes_hmac,
    diffie_hellman_ratchet_curve25519,
    kdf_hkdf,
    kdf_separate_hmacs,
)

from whispr.client import PhoenixClient, ReplyError


class _State(x3dh.State):
    @staticmethod
    def _encode_public_key(key_format: x3dh.IdentityKeyFormat, pub: bytes) -> bytes:
        return b"\x05" + pub

    def _publish_bundle(self, bundle: x3dh.Bundle) -> None:
        pass  # uploaded explicitly (Device.upload)


class _RootKDF(kdf_hkdf.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"whispr-test root chain"


class _MessageKDF(kdf_separate_hmacs.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256


class _AEAD(aead_aes_hmac.AEAD):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"whispr-test message keys"


class _Ratchet(DoubleRatchet):
    @staticmethod
    def _build_associated_data(associated_data: bytes, header: RatchetHeader) -> bytes:
        return (
            len(associated_data).to_bytes(4, "big")
            + associated_data
            + header.ratchet_pub
            + header.previous_sending_chain_length.to_bytes(8, "big")
            + header.sending_chain_length.to_bytes(8, "big")
        )


_RATCHET: dict[str, Any] = {
    "diffie_hellman_ratchet_class": diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet,
    "root_chain_kdf": _RootKDF,
    "message_chain_kdf": _MessageKDF,
    "message_chain_constant": b"\x01\x02",
    "dos_protection_threshold": 100,
    "max_num_skipped_message_keys": 1000,
    "aead": _AEAD,
}


class _Wire(msgspec.Struct):
    """An envelope's ciphertext as this client serializes it."""

    ratchet_pub: bytes
    pn: int
    n: int
    ciphertext: bytes
    identity_key: bytes | None = None
    ephemeral_key: bytes | None = None
    signed_pre_key: bytes | None = None
    pre_key: bytes | None = None
    #: The sender device's registration id (as Signal's PreKeySignalMessage carries it).
    registration_id: int = 0


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def normalized_words(text: str) -> list[str]:
    """The words a search matches: NFKC, case-folded, split on what is not alphanumeric."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    words = "".join(c if c.isalnum() else " " for c in folded).split()
    return list(dict.fromkeys(words))


def blind_tokens(key: bytes, text: str) -> list[bytes]:
    """HMAC-SHA256 of each normalized word under the conversation's shared key, 16 bytes."""
    return [hmac.new(key, w.encode(), hashlib.sha256).digest()[:16] for w in normalized_words(text)]


@dataclass
class Device:
    """One device of one user: its X3DH state and its ratchet per peer device."""

    user_id: str
    device_id: str
    registration_id: int = field(default_factory=lambda: secrets.randbelow(16000) + 1)
    state: _State = field(
        default_factory=lambda: _State.create(
            x3dh.IdentityKeyFormat.ED_25519, x3dh.HashFunction.SHA_256, b"whispr-test"
        )
    )
    sessions: dict[tuple[str, str], _Ratchet] = field(default_factory=dict)
    client: PhoenixClient | None = None

    @property
    def topic(self) -> str:
        return f"user:{self.user_id}"

    async def register(self, name: str = "test device") -> dict[str, Any]:
        assert self.client is not None
        return await self.client.push(
            self.topic,
            "register_device",
            {"registration_id": self.registration_id, "name": name},
        )

    def upload_payload(self, *, one_time: int | None = None) -> dict[str, Any]:
        bundle = self.state.bundle
        pre_keys = sorted(bundle.pre_keys)
        if one_time is not None:
            pre_keys = pre_keys[:one_time]
        return {
            "identity_key": b64(bundle.identity_key),
            "signed_prekey": {
                "key_id": 1,
                "public_key": b64(bundle.signed_pre_key),
                "signature": b64(bundle.signed_pre_key_sig),
            },
            "one_time_prekeys": [
                {"key_id": i, "public_key": b64(k)} for i, k in enumerate(pre_keys, 1)
            ],
        }

    async def upload(self, *, one_time: int | None = 20) -> dict[str, Any]:
        assert self.client is not None
        return await self.client.push(
            self.topic, "upload_keys", self.upload_payload(one_time=one_time)
        )

    async def fetch_sessions(self, user_id: str, device_ids: list[str]) -> list[dict[str, Any]]:
        """Fetch the bundles of these devices and start a session with each (X3DH)."""
        assert self.client is not None
        reply = await self.client.push(
            self.topic, "get_bundles", {"user_id": user_id, "device_ids": device_ids}
        )
        for bundle in reply["bundles"]:
            otk = bundle["one_time_prekey"]
            x3dh_bundle = x3dh.Bundle(
                identity_key=base64.b64decode(bundle["identity_key"]),
                signed_pre_key=base64.b64decode(bundle["signed_prekey"]["public_key"]),
                signed_pre_key_sig=base64.b64decode(bundle["signed_prekey"]["signature"]),
                pre_keys=frozenset()
                if otk is None
                else frozenset({base64.b64decode(otk["public_key"])}),
            )
            self.sessions[(user_id, bundle["device_id"])] = _Pending(x3dh_bundle)  # type: ignore[assignment]
        return list(reply["bundles"])

    async def encrypt_for(self, peer: tuple[str, str], plaintext: bytes) -> tuple[str, bytes]:
        """``(type, ciphertext)`` for one peer device: a prekey message opens the session."""
        session = self.sessions[peer]
        if isinstance(session, _Pending):
            secret, ad, header = await self.state.get_shared_secret_active(
                session.bundle, require_pre_key=False
            )
            ratchet, message = await _Ratchet.encrypt_initial_message(
                **_RATCHET,
                shared_secret=secret,
                recipient_ratchet_pub=session.bundle.signed_pre_key,
                message=plaintext,
                associated_data=ad,
            )
            self.sessions[peer] = ratchet
            session.ad = ad
            self._ads[peer] = ad
            wire = _Wire(
                ratchet_pub=message.header.ratchet_pub,
                pn=message.header.previous_sending_chain_length,
                n=message.header.sending_chain_length,
                ciphertext=message.ciphertext,
                identity_key=header.identity_key,
                ephemeral_key=header.ephemeral_key,
                signed_pre_key=header.signed_pre_key,
                pre_key=header.pre_key,
                registration_id=self.registration_id,
            )
            return "prekey", msgspec.json.encode(wire)
        message = await session.encrypt_message(plaintext, self._ads[peer])
        wire = _Wire(
            ratchet_pub=message.header.ratchet_pub,
            pn=message.header.previous_sending_chain_length,
            n=message.header.sending_chain_length,
            ciphertext=message.ciphertext,
        )
        return "message", msgspec.json.encode(wire)

    async def decrypt_from(self, peer: tuple[str, str], kind: str, data: bytes) -> bytes:
        wire = msgspec.json.decode(data, type=_Wire)
        message = EncryptedMessage(
            header=RatchetHeader(wire.ratchet_pub, wire.pn, wire.n), ciphertext=wire.ciphertext
        )
        if kind == "prekey":
            assert wire.identity_key is not None
            assert wire.ephemeral_key is not None
            assert wire.signed_pre_key is not None
            header = x3dh.Header(
                identity_key=wire.identity_key,
                ephemeral_key=wire.ephemeral_key,
                signed_pre_key=wire.signed_pre_key,
                pre_key=wire.pre_key,
            )
            secret, ad, spk = await self.state.get_shared_secret_passive(
                header, require_pre_key=False
            )
            ratchet, plaintext = await _Ratchet.decrypt_initial_message(
                **_RATCHET,
                shared_secret=secret,
                own_ratchet_priv=spk.priv,
                message=message,
                associated_data=ad,
            )
            if wire.pre_key is not None:
                self.state.delete_pre_key(wire.pre_key)
            self.sessions[peer] = ratchet
            self._ads[peer] = ad
            self.registrations[peer] = wire.registration_id
            return plaintext
        return await self.sessions[peer].decrypt_message(message, self._ads[peer])

    @property
    def _ads(self) -> dict[tuple[str, str], bytes]:
        ads: dict[tuple[str, str], bytes] | None = getattr(self, "_ad_map", None)
        if ads is None:
            ads = {}
            self._ad_map = ads
        return ads

    async def send(
        self,
        conversation_id: str,
        client_id: str,
        text: str,
        *,
        search_key: bytes | None = None,
        edit_of: int | None = None,
    ) -> dict[str, Any]:
        """Send ``text`` to every device of the conversation, fetching the bundles the server
        says are missing (``mismatched_devices``) and retrying, as Signal clients do; with
        ``edit_of``, as the edit of that seq (``edit_message`` with envelopes)."""
        assert self.client is not None
        topic = f"conversation:{conversation_id}"
        for _attempt in range(3):
            envelopes = []
            for peer in sorted(self.sessions):
                kind, ciphertext = await self.encrypt_for(peer, text.encode())
                envelopes.append(
                    {
                        "user_id": peer[0],
                        "device_id": peer[1],
                        "registration_id": self.registrations[peer],
                        "type": kind,
                        "ciphertext": b64(ciphertext),
                    }
                )
            payload: dict[str, Any] = {
                "client_id": client_id,
                "metadata": {"e2e": True},
                "envelopes": envelopes,
            }
            if search_key is not None:
                payload["blind_tokens"] = [b64(t) for t in blind_tokens(search_key, text)]
            event = "send_message"
            if edit_of is not None:
                event = "edit_message"
                payload["seq"] = edit_of
                del payload["metadata"]
            try:
                return await self.client.push(topic, event, payload)
            except ReplyError as error:
                if error.reason != "mismatched_devices":
                    raise
                for user_id, device_ids in error.response["extra"].items():
                    for device_id in device_ids:
                        self.sessions.pop((user_id, device_id), None)
                for user_id, device_ids in error.response["missing"].items():
                    for bundle in await self.fetch_sessions(user_id, device_ids):
                        self.registrations[(user_id, bundle["device_id"])] = bundle[
                            "registration_id"
                        ]
        raise AssertionError("the devices kept changing")

    @property
    def registrations(self) -> dict[tuple[str, str], int]:
        found: dict[tuple[str, str], int] | None = getattr(self, "_registrations", None)
        if found is None:
            found = {}
            self._registrations = found
        return found


@dataclass
class _Pending:
    """A bundle fetched, its session not started yet (the first message starts it)."""

    bundle: x3dh.Bundle
    ad: bytes = b""
