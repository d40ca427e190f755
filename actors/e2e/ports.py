"""The ``KeyStore`` port: what the key directory, the envelopes and blind search need stored.

``PostgresStore`` and ``SqliteStore`` implement it beside the actors' ``Store`` port, with one
contract suite for both (tests/store/test_contract_e2e.py). The rules (sizes, signatures,
who may do what) are checked before a call reaches it (actors/e2e/rules.py); the store
keeps what must hold across nodes: a one-time prekey is claimed by one fetch only, a
user's device count stays under its limit, an envelope is written once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from actors.e2e.model import (
    ClaimedBundle,
    Device,
    Envelope,
    KeyUpload,
    StoredEnvelope,
    StoredKeys,
)

__all__ = ["KeyStore"]


class KeyStore(Protocol):
    """Devices, their public keys, envelopes waiting for them, blind-index tokens."""

    async def register_device(self, device: Device, max_devices: int) -> Device | None:
        """Add the device or, already there, update its registration id and name.

        A changed registration id (the app reinstalled) drops the device's prekeys and the
        envelopes waiting for it: they belonged to the install before. Returns the device as
        it was before (None: new). A new device past ``max_devices`` of its user raises
        ``conflict``.
        """
        ...

    async def list_devices(self, user_ids: Sequence[str]) -> list[Device]:
        """The registered devices of these users, by user then device id."""
        ...

    async def remove_device(self, user_id: str, device_id: str) -> bool:
        """Forget the device with its keys and the envelopes waiting for it; False: unknown."""
        ...

    async def store_keys(
        self, user_id: str, device_id: str, upload: KeyUpload, now: float, grace_s: float
    ) -> StoredKeys:
        """Write an upload (already checked) in one transaction.

        A signed prekey (or KEM prekey) becomes the current one; the one it replaces stays,
        superseded, for ``grace_s``; older ones go. One-time prekeys are added (an id already
        there keeps its key). Raises ``not_found`` for an unregistered device and ``conflict``
        for a signed key id the device used before with another key, or for more one-time
        prekeys than :data:`actors.e2e.rules.MAX_ONE_TIME_PREKEYS` in all.
        """
        ...

    async def claim_bundles(
        self, user_id: str, device_ids: Sequence[str] | None
    ) -> list[ClaimedBundle]:
        """A bundle for each device of the user with a signed prekey (these devices only, if
        named), each claiming one one-time prekey if any is left: deleted as it is read, so no
        two claims, on any node, ever get the same one."""
        ...

    async def put_envelopes(
        self,
        conversation_id: str,
        sender_id: str,
        client_id: str,
        envelopes: Sequence[Envelope],
        expires_at: float,
    ) -> None:
        """Keep a message's envelopes (before the message is written); a retry of the same
        client id keeps the first ones, as the message keeps its first content."""
        ...

    async def device_envelopes(
        self,
        conversation_id: str,
        user_id: str,
        device_id: str,
        messages: Sequence[tuple[str, str]],
        now: float,
    ) -> dict[tuple[str, str], StoredEnvelope]:
        """This device's envelopes of these messages (``(sender_id, client_id)``), unexpired."""
        ...

    async def delete_delivered_envelopes(
        self, conversation_id: str, user_id: str, device_id: str, seq: int
    ) -> int:
        """Delete the device's envelopes of messages up to ``seq`` (it has them); how many."""
        ...

    async def purge_envelopes(self, now: float, limit: int) -> int:
        """Delete up to ``limit`` envelopes expired at ``now``; how many (the TTL backstop)."""
        ...

    async def forget_message(self, conversation_id: str, sender_id: str, client_id: str) -> None:
        """Delete a message's envelopes and blind tokens (it was deleted for everyone)."""
        ...

    async def put_blind_tokens(
        self, conversation_id: str, sender_id: str, client_id: str, tokens: Sequence[bytes]
    ) -> None:
        """Index a message's blind tokens (before the message is written)."""
        ...

    async def search_blind(
        self,
        conversation_id: str,
        viewer_id: str,
        tokens: Sequence[bytes],
        before_seq: int | None,
        limit: int,
    ) -> list[int]:
        """The seqs of messages carrying every one of ``tokens``, newest first, at most
        ``limit``, before ``before_seq`` if given; deleted ones and those the viewer hid are
        left out."""
        ...
