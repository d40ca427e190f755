"""The :class:`actors.e2e.ports.KeyStore` on PostgreSQL: a mixin of ``PostgresStore``.

A one-time prekey is claimed by ``DELETE ... RETURNING`` of the row a ``FOR UPDATE SKIP
LOCKED`` subquery picked: two fetches at the same moment, on any nodes, lock different
rows (or the second finds none), so no key is ever handed out twice, and neither waits for
the other's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Final

from actors.e2e import rules as e2e_rules
from actors.e2e.model import (
    Bundle,
    ClaimedBundle,
    Device,
    Envelope,
    KeyUpload,
    OneTimePreKey,
    SignedPreKey,
    StoredEnvelope,
    StoredKeys,
)
from actors.errors import Reason, WhisprError

__all__ = ["PostgresKeys"]

_DEVICE_COLUMNS: Final = (
    "d.user_id, d.device_id, d.registration_id, d.name, d.created_at, d.identity_key, "
    "(SELECT count(*) FROM e2e_one_time_prekeys o "
    "WHERE o.user_id = d.user_id AND o.device_id = d.device_id), "
    "(SELECT s.key_id FROM e2e_signed_prekeys s WHERE s.user_id = d.user_id "
    "AND s.device_id = d.device_id AND s.kind = 'ec' AND s.superseded_at IS NULL)"
)

_CLAIM: Final = """
DELETE FROM e2e_one_time_prekeys
WHERE (user_id, device_id, key_id) = (
    SELECT user_id, device_id, key_id FROM e2e_one_time_prekeys
    WHERE user_id = $1 AND device_id = $2
    ORDER BY key_id LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING key_id, public_key
"""

_CURRENT_SIGNED: Final = """
SELECT d.device_id, d.registration_id, d.identity_key, s.kind, s.key_id, s.public_key,
       s.signature
FROM e2e_devices d JOIN e2e_signed_prekeys s
  ON s.user_id = d.user_id AND s.device_id = d.device_id AND s.superseded_at IS NULL
WHERE d.user_id = $1 AND d.identity_key IS NOT NULL
ORDER BY d.device_id
"""


def device_of(row: Any) -> Device:
    """A device row (``_DEVICE_COLUMNS``, or the same first six columns) as a Device."""
    return Device(
        user_id=row[0],
        device_id=row[1],
        registration_id=row[2],
        name=row[3],
        created_at=row[4],
        identity_key=None if row[5] is None else bytes(row[5]),
        one_time_prekeys=row[6] if len(row) > 6 else 0,
        signed_prekey_id=row[7] if len(row) > 7 else None,
    )


class PostgresKeys:
    """End-to-end keys, envelopes and blind tokens; ``PostgresStore`` supplies the pool."""

    def _connection(self) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # PostgresStore's

    async def register_device(self, device: Device, max_devices: int) -> Device | None:
        async with self._connection() as c, c.transaction():
            # One registration of a user's devices at a time: the count below stays true.
            await c.execute(
                "SELECT pg_advisory_xact_lock(hashtext('e2e-devices:' || $1))", device.user_id
            )
            row = await c.fetchrow(
                f"SELECT {_DEVICE_COLUMNS} FROM e2e_devices d "
                "WHERE d.user_id = $1 AND d.device_id = $2",
                device.user_id,
                device.device_id,
            )
            if row is None:
                count = await c.fetchval(
                    "SELECT count(*) FROM e2e_devices WHERE user_id = $1", device.user_id
                )
                if count >= max_devices:
                    raise WhisprError(
                        Reason.CONFLICT,
                        f"at most {max_devices} devices per user; remove one first",
                        limit=max_devices,
                    )
                await c.execute(
                    "INSERT INTO e2e_devices (user_id, device_id, registration_id, name, "
                    "created_at) VALUES ($1, $2, $3, $4, $5)",
                    device.user_id,
                    device.device_id,
                    device.registration_id,
                    device.name,
                    device.created_at,
                )
                return None
            before = device_of(row)
            await c.execute(
                "UPDATE e2e_devices SET registration_id = $3, name = $4 "
                "WHERE user_id = $1 AND device_id = $2",
                device.user_id,
                device.device_id,
                device.registration_id,
                device.name,
            )
            if before.registration_id != device.registration_id:
                for table in ("e2e_signed_prekeys", "e2e_one_time_prekeys", "e2e_envelopes"):
                    await c.execute(
                        f"DELETE FROM {table} WHERE user_id = $1 AND device_id = $2",
                        device.user_id,
                        device.device_id,
                    )
            return before

    async def list_devices(self, user_ids: Sequence[str]) -> list[Device]:
        async with self._connection() as c:
            rows = await c.fetch(
                f"SELECT {_DEVICE_COLUMNS} FROM e2e_devices d "
                "WHERE d.user_id = ANY($1::text[]) ORDER BY d.user_id, d.device_id",
                list(user_ids),
            )
        return [device_of(r) for r in rows]

    async def remove_device(self, user_id: str, device_id: str) -> bool:
        # Keys and envelopes go with it (ON DELETE CASCADE).
        async with self._connection() as c:
            status = await c.execute(
                "DELETE FROM e2e_devices WHERE user_id = $1 AND device_id = $2",
                user_id,
                device_id,
            )
        return bool(status != "DELETE 0")

    async def store_keys(
        self, user_id: str, device_id: str, upload: KeyUpload, now: float, grace_s: float
    ) -> StoredKeys:
        async with self._connection() as c, c.transaction():
            previous = await c.fetchrow(
                "SELECT identity_key FROM e2e_devices WHERE user_id = $1 AND device_id = $2 "
                "FOR UPDATE",
                user_id,
                device_id,
            )
            if previous is None:
                raise WhisprError(Reason.NOT_FOUND, "register this device first", field="device_id")
            identity = None if previous[0] is None else bytes(previous[0])
            if upload.identity_key is not None and upload.identity_key != identity:
                await c.execute(
                    "UPDATE e2e_devices SET identity_key = $3 "
                    "WHERE user_id = $1 AND device_id = $2",
                    user_id,
                    device_id,
                    upload.identity_key,
                )
                if identity is not None:  # the old identity's keys are worth nothing now
                    for table in ("e2e_signed_prekeys", "e2e_one_time_prekeys"):
                        await c.execute(
                            f"DELETE FROM {table} WHERE user_id = $1 AND device_id = $2",
                            user_id,
                            device_id,
                        )
            # A superseded signed key past its grace is gone.
            await c.execute(
                "DELETE FROM e2e_signed_prekeys WHERE user_id = $1 AND device_id = $2 "
                "AND superseded_at <= $3",
                user_id,
                device_id,
                now - grace_s,
            )
            for kind, key in (("ec", upload.signed_prekey), ("kem", upload.kem_prekey)):
                if key is not None:
                    await self._rotate(c, user_id, device_id, kind, key, now)
            if upload.one_time_prekeys:
                await c.executemany(
                    "INSERT INTO e2e_one_time_prekeys (user_id, device_id, key_id, public_key) "
                    "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    [(user_id, device_id, k.key_id, k.public_key) for k in upload.one_time_prekeys],
                )
            count = await c.fetchval(
                "SELECT count(*) FROM e2e_one_time_prekeys WHERE user_id = $1 AND device_id = $2",
                user_id,
                device_id,
            )
            if count > e2e_rules.MAX_ONE_TIME_PREKEYS:
                raise WhisprError(
                    Reason.CONFLICT,
                    f"a device keeps at most {e2e_rules.MAX_ONE_TIME_PREKEYS} one-time prekeys",
                    field="one_time_prekeys",
                    limit=e2e_rules.MAX_ONE_TIME_PREKEYS,
                )
        return StoredKeys(previous_identity=identity, one_time_prekeys=int(count))

    @staticmethod
    async def _rotate(
        c: Any, user_id: str, device_id: str, kind: str, key: SignedPreKey, now: float
    ) -> None:
        """Make ``key`` the current signed key of its kind; the one before stays for the grace."""
        same = await c.fetchrow(
            "SELECT public_key, superseded_at FROM e2e_signed_prekeys "
            "WHERE user_id = $1 AND device_id = $2 AND kind = $3 AND key_id = $4",
            user_id,
            device_id,
            kind,
            key.key_id,
        )
        if same is not None:
            if bytes(same[0]) != key.public_key:
                raise WhisprError(
                    Reason.CONFLICT,
                    f"key id {key.key_id} was used before with another key; use a new id",
                    field="kem_prekey" if kind == "kem" else "signed_prekey",
                )
            if same[1] is None:
                return  # the current one, uploaded again
        # The one superseded before: gone (one previous key at a time). The current one:
        # superseded now, kept for the grace.
        await c.execute(
            "DELETE FROM e2e_signed_prekeys WHERE user_id = $1 AND device_id = $2 "
            "AND kind = $3 AND superseded_at IS NOT NULL",
            user_id,
            device_id,
            kind,
        )
        await c.execute(
            "UPDATE e2e_signed_prekeys SET superseded_at = $4 WHERE user_id = $1 "
            "AND device_id = $2 AND kind = $3 AND superseded_at IS NULL",
            user_id,
            device_id,
            kind,
            now,
        )
        await c.execute(
            "INSERT INTO e2e_signed_prekeys (user_id, device_id, kind, key_id, public_key, "
            "signature, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            user_id,
            device_id,
            kind,
            key.key_id,
            key.public_key,
            key.signature,
            now,
        )

    async def claim_bundles(
        self, user_id: str, device_ids: Sequence[str] | None
    ) -> list[ClaimedBundle]:
        async with self._connection() as c, c.transaction():
            rows = await c.fetch(_CURRENT_SIGNED, user_id)
            devices: dict[str, dict[str, Any]] = {}
            for r in rows:
                if device_ids is not None and r[0] not in device_ids:
                    continue
                entry = devices.setdefault(
                    r[0], {"registration_id": r[1], "identity_key": bytes(r[2])}
                )
                entry[r[3]] = SignedPreKey(
                    key_id=r[4], public_key=bytes(r[5]), signature=bytes(r[6])
                )
            claimed: list[ClaimedBundle] = []
            for device_id, entry in devices.items():
                if "ec" not in entry:
                    continue
                row = await c.fetchrow(_CLAIM, user_id, device_id)
                remaining = await c.fetchval(
                    "SELECT count(*) FROM e2e_one_time_prekeys "
                    "WHERE user_id = $1 AND device_id = $2",
                    user_id,
                    device_id,
                )
                bundle = Bundle(
                    user_id=user_id,
                    device_id=device_id,
                    registration_id=entry["registration_id"],
                    identity_key=entry["identity_key"],
                    signed_prekey=entry["ec"],
                    one_time_prekey=None
                    if row is None
                    else OneTimePreKey(key_id=row[0], public_key=bytes(row[1])),
                    kem_prekey=entry.get("kem"),
                )
                claimed.append(ClaimedBundle(bundle=bundle, remaining=int(remaining)))
        return claimed

    async def put_envelopes(
        self,
        conversation_id: str,
        sender_id: str,
        client_id: str,
        envelopes: Sequence[Envelope],
        expires_at: float,
    ) -> None:
        async with self._connection() as c:
            await c.execute(
                "INSERT INTO e2e_envelopes (conversation_id, user_id, device_id, sender_id, "
                "client_id, type, ciphertext, expires_at) "
                "SELECT $1, u, d, $2, $3, t, x, $4 FROM unnest($5::text[], $6::text[], "
                "$7::text[], $8::bytea[]) AS e(u, d, t, x) "
                "JOIN e2e_devices ON user_id = u AND device_id = d "
                "ON CONFLICT DO NOTHING",
                conversation_id,
                sender_id,
                client_id,
                expires_at,
                [e.user_id for e in envelopes],
                [e.device_id for e in envelopes],
                [e.type for e in envelopes],
                [e.ciphertext for e in envelopes],
            )

    async def device_envelopes(
        self,
        conversation_id: str,
        user_id: str,
        device_id: str,
        messages: Sequence[tuple[str, str]],
        now: float,
    ) -> dict[tuple[str, str], StoredEnvelope]:
        if not messages:
            return {}
        async with self._connection() as c:
            rows = await c.fetch(
                "SELECT e.sender_id, e.client_id, e.type, e.ciphertext FROM e2e_envelopes e "
                "JOIN unnest($4::text[], $5::text[]) AS m(s, k) "
                "ON e.sender_id = m.s AND e.client_id = m.k "
                "WHERE e.conversation_id = $1 AND e.user_id = $2 AND e.device_id = $3 "
                "AND e.expires_at > $6",
                conversation_id,
                user_id,
                device_id,
                [m[0] for m in messages],
                [m[1] for m in messages],
                now,
            )
        return {(r[0], r[1]): StoredEnvelope(type=r[2], ciphertext=bytes(r[3])) for r in rows}

    async def delete_delivered_envelopes(
        self, conversation_id: str, user_id: str, device_id: str, seq: int
    ) -> int:
        async with self._connection() as c:
            status = await c.execute(
                "DELETE FROM e2e_envelopes e USING messages m "
                "WHERE e.conversation_id = $1 AND e.user_id = $2 AND e.device_id = $3 "
                "AND m.conversation_id = $1 AND m.sender_id = e.sender_id "
                "AND m.client_id = e.client_id AND m.seq <= $4",
                conversation_id,
                user_id,
                device_id,
                seq,
            )
        return int(str(status).rsplit(" ", 1)[-1])

    async def purge_envelopes(self, now: float, limit: int) -> int:
        async with self._connection() as c:
            status = await c.execute(
                "DELETE FROM e2e_envelopes WHERE ctid = ANY(ARRAY("
                "SELECT ctid FROM e2e_envelopes WHERE expires_at <= $1 LIMIT $2))",
                now,
                limit,
            )
        return int(str(status).rsplit(" ", 1)[-1])

    async def forget_message(self, conversation_id: str, sender_id: str, client_id: str) -> None:
        async with self._connection() as c, c.transaction():
            for table in ("e2e_envelopes", "e2e_blind_tokens"):
                await c.execute(
                    f"DELETE FROM {table} WHERE conversation_id = $1 AND sender_id = $2 "
                    "AND client_id = $3",
                    conversation_id,
                    sender_id,
                    client_id,
                )

    async def put_blind_tokens(
        self, conversation_id: str, sender_id: str, client_id: str, tokens: Sequence[bytes]
    ) -> None:
        if not tokens:
            return
        async with self._connection() as c:
            await c.execute(
                "INSERT INTO e2e_blind_tokens (conversation_id, token, sender_id, client_id) "
                "SELECT $1, t, $2, $3 FROM unnest($4::bytea[]) AS t ON CONFLICT DO NOTHING",
                conversation_id,
                sender_id,
                client_id,
                list(dict.fromkeys(tokens)),
            )

    async def search_blind(
        self,
        conversation_id: str,
        viewer_id: str,
        tokens: Sequence[bytes],
        before_seq: int | None,
        limit: int,
    ) -> list[int]:
        wanted = list(dict.fromkeys(tokens))
        if not wanted:
            return []
        async with self._connection() as c:
            rows = await c.fetch(
                "SELECT m.seq FROM e2e_blind_tokens t JOIN messages m "
                "ON m.conversation_id = t.conversation_id AND m.sender_id = t.sender_id "
                "AND m.client_id = t.client_id "
                "WHERE t.conversation_id = $1 AND t.token = ANY($2::bytea[]) "
                "AND NOT m.deleted AND m.seq < $3 AND NOT EXISTS ("
                "SELECT 1 FROM hidden_messages h WHERE h.conversation_id = $1 "
                "AND h.user_id = $4 AND h.seq = m.seq) "
                "GROUP BY m.seq HAVING count(*) = $5 ORDER BY m.seq DESC LIMIT $6",
                conversation_id,
                wanted,
                before_seq if before_seq is not None else 2**63 - 1,
                viewer_id,
                len(wanted),
                limit,
            )
        return [r[0] for r in rows]
