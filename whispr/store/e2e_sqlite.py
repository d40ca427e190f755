"""The :class:`actors.e2e.ports.KeyStore` on SQLite: a mixin of ``SqliteStore``.

The store has one connection, serialized; a write that must be atomic (claiming a one-time
prekey, storing an upload) runs in one ``BEGIN IMMEDIATE`` transaction, which also holds off
another process writing the same file, so a one-time prekey is read and deleted by one
fetch only.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

import aiosqlite

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
from whispr.store.e2e_postgres import device_of

__all__ = ["SqliteKeys"]

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

_DEVICE_COLUMNS: Final = (
    "d.user_id, d.device_id, d.registration_id, d.name, d.created_at, d.identity_key, "
    "(SELECT count(*) FROM e2e_one_time_prekeys o "
    "WHERE o.user_id = d.user_id AND o.device_id = d.device_id), "
    "(SELECT s.key_id FROM e2e_signed_prekeys s WHERE s.user_id = d.user_id "
    "AND s.device_id = d.device_id AND s.kind = 'ec' AND s.superseded_at IS NULL)"
)
#: Values per ``IN (...)`` list, under SQLite's limit on a statement's variables.
_CHUNK: Final = 400


def _serialized(method: F) -> F:
    """As ``SqliteStore``'s own methods: one at a time, driver errors in Whispr's words."""

    @functools.wraps(method)
    async def serialized(self: SqliteKeys, *args: Any, **kwargs: Any) -> Any:
        async with self._lock.hold():
            try:
                return await method(self, *args, **kwargs)
            except (sqlite3.Error, ValueError) as exc:
                raise self._translate_error(exc) from exc

    return serialized  # type: ignore[return-value]


class SqliteKeys:
    """End-to-end keys, envelopes and blind tokens; ``SqliteStore`` supplies the connection."""

    _lock: Any

    @property
    def db(self) -> aiosqlite.Connection:
        raise NotImplementedError  # SqliteStore's

    @staticmethod
    def _translate_error(exc: sqlite3.Error | ValueError) -> WhisprError:
        raise NotImplementedError  # SqliteStore's

    async def _rows(self, query: str, parameters: Sequence[Any] = ()) -> list[Any]:
        return list(await self.db.execute_fetchall(query, parameters))

    @contextlib.asynccontextmanager
    async def _immediate(self) -> AsyncIterator[None]:
        db = self.db
        await db.execute("BEGIN IMMEDIATE")
        try:
            yield
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise

    @_serialized
    async def register_device(self, device: Device, max_devices: int) -> Device | None:
        db = self.db
        async with self._immediate():
            rows = await self._rows(
                f"SELECT {_DEVICE_COLUMNS} FROM e2e_devices d "
                "WHERE d.user_id = ? AND d.device_id = ?",
                (device.user_id, device.device_id),
            )
            if not rows:
                count = (
                    await self._rows(
                        "SELECT count(*) FROM e2e_devices WHERE user_id = ?", (device.user_id,)
                    )
                )[0][0]
                if count >= max_devices:
                    raise WhisprError(
                        Reason.CONFLICT,
                        f"at most {max_devices} devices per user; remove one first",
                        limit=max_devices,
                    )
                await db.execute(
                    "INSERT INTO e2e_devices (user_id, device_id, registration_id, name, "
                    "created_at) VALUES (?, ?, ?, ?, ?)",
                    (
                        device.user_id,
                        device.device_id,
                        device.registration_id,
                        device.name,
                        device.created_at,
                    ),
                )
                return None
            before = device_of(rows[0])
            await db.execute(
                "UPDATE e2e_devices SET registration_id = ?, name = ? "
                "WHERE user_id = ? AND device_id = ?",
                (device.registration_id, device.name, device.user_id, device.device_id),
            )
            if before.registration_id != device.registration_id:
                for table in ("e2e_signed_prekeys", "e2e_one_time_prekeys", "e2e_envelopes"):
                    await db.execute(
                        f"DELETE FROM {table} WHERE user_id = ? AND device_id = ?",
                        (device.user_id, device.device_id),
                    )
            return before

    @_serialized
    async def list_devices(self, user_ids: Sequence[str]) -> list[Device]:
        found: list[Device] = []
        unique = list(dict.fromkeys(user_ids))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            rows = await self._rows(
                f"SELECT {_DEVICE_COLUMNS} FROM e2e_devices d "
                f"WHERE d.user_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            found += [device_of(r) for r in rows]
        return sorted(found, key=lambda d: (d.user_id, d.device_id))

    @_serialized
    async def remove_device(self, user_id: str, device_id: str) -> bool:
        cursor = await self.db.execute(
            "DELETE FROM e2e_devices WHERE user_id = ? AND device_id = ?", (user_id, device_id)
        )
        return cursor.rowcount > 0

    @_serialized
    async def store_keys(
        self, user_id: str, device_id: str, upload: KeyUpload, now: float, grace_s: float
    ) -> StoredKeys:
        db = self.db
        async with self._immediate():
            previous = await self._rows(
                "SELECT identity_key FROM e2e_devices WHERE user_id = ? AND device_id = ?",
                (user_id, device_id),
            )
            if not previous:
                raise WhisprError(Reason.NOT_FOUND, "register this device first", field="device_id")
            identity = None if previous[0][0] is None else bytes(previous[0][0])
            if upload.identity_key is not None and upload.identity_key != identity:
                await db.execute(
                    "UPDATE e2e_devices SET identity_key = ? WHERE user_id = ? AND device_id = ?",
                    (upload.identity_key, user_id, device_id),
                )
                if identity is not None:
                    for table in ("e2e_signed_prekeys", "e2e_one_time_prekeys"):
                        await db.execute(
                            f"DELETE FROM {table} WHERE user_id = ? AND device_id = ?",
                            (user_id, device_id),
                        )
            await db.execute(
                "DELETE FROM e2e_signed_prekeys WHERE user_id = ? AND device_id = ? "
                "AND superseded_at <= ?",
                (user_id, device_id, now - grace_s),
            )
            for kind, key in (("ec", upload.signed_prekey), ("kem", upload.kem_prekey)):
                if key is not None:
                    await self._rotate(user_id, device_id, kind, key, now)
            if upload.one_time_prekeys:
                await db.executemany(
                    "INSERT INTO e2e_one_time_prekeys (user_id, device_id, key_id, public_key) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [(user_id, device_id, k.key_id, k.public_key) for k in upload.one_time_prekeys],
                )
            count = (
                await self._rows(
                    "SELECT count(*) FROM e2e_one_time_prekeys WHERE user_id = ? AND device_id = ?",
                    (user_id, device_id),
                )
            )[0][0]
            if count > e2e_rules.MAX_ONE_TIME_PREKEYS:
                raise WhisprError(
                    Reason.CONFLICT,
                    f"a device keeps at most {e2e_rules.MAX_ONE_TIME_PREKEYS} one-time prekeys",
                    field="one_time_prekeys",
                    limit=e2e_rules.MAX_ONE_TIME_PREKEYS,
                )
        return StoredKeys(previous_identity=identity, one_time_prekeys=int(count))

    async def _rotate(
        self, user_id: str, device_id: str, kind: str, key: SignedPreKey, now: float
    ) -> None:
        db = self.db
        same = await self._rows(
            "SELECT public_key, superseded_at FROM e2e_signed_prekeys "
            "WHERE user_id = ? AND device_id = ? AND kind = ? AND key_id = ?",
            (user_id, device_id, kind, key.key_id),
        )
        if same:
            if bytes(same[0][0]) != key.public_key:
                raise WhisprError(
                    Reason.CONFLICT,
                    f"key id {key.key_id} was used before with another key; use a new id",
                    field="kem_prekey" if kind == "kem" else "signed_prekey",
                )
            if same[0][1] is None:
                return
        await db.execute(
            "DELETE FROM e2e_signed_prekeys WHERE user_id = ? AND device_id = ? "
            "AND kind = ? AND superseded_at IS NOT NULL",
            (user_id, device_id, kind),
        )
        await db.execute(
            "UPDATE e2e_signed_prekeys SET superseded_at = ? WHERE user_id = ? "
            "AND device_id = ? AND kind = ? AND superseded_at IS NULL",
            (now, user_id, device_id, kind),
        )
        await db.execute(
            "INSERT INTO e2e_signed_prekeys (user_id, device_id, kind, key_id, public_key, "
            "signature, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (user_id, device_id, kind, key.key_id, key.public_key, key.signature, now),
        )

    @_serialized
    async def claim_bundles(
        self, user_id: str, device_ids: Sequence[str] | None
    ) -> list[ClaimedBundle]:
        db = self.db
        claimed: list[ClaimedBundle] = []
        async with self._immediate():
            rows = await self._rows(
                "SELECT d.device_id, d.registration_id, d.identity_key, s.kind, s.key_id, "
                "s.public_key, s.signature FROM e2e_devices d JOIN e2e_signed_prekeys s "
                "ON s.user_id = d.user_id AND s.device_id = d.device_id "
                "AND s.superseded_at IS NULL "
                "WHERE d.user_id = ? AND d.identity_key IS NOT NULL ORDER BY d.device_id",
                (user_id,),
            )
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
            for device_id, entry in devices.items():
                if "ec" not in entry:
                    continue
                keys = await self._rows(
                    "SELECT key_id, public_key FROM e2e_one_time_prekeys "
                    "WHERE user_id = ? AND device_id = ? ORDER BY key_id LIMIT 1",
                    (user_id, device_id),
                )
                one_time = None
                if keys:
                    one_time = OneTimePreKey(key_id=keys[0][0], public_key=bytes(keys[0][1]))
                    await db.execute(
                        "DELETE FROM e2e_one_time_prekeys "
                        "WHERE user_id = ? AND device_id = ? AND key_id = ?",
                        (user_id, device_id, one_time.key_id),
                    )
                remaining = (
                    await self._rows(
                        "SELECT count(*) FROM e2e_one_time_prekeys "
                        "WHERE user_id = ? AND device_id = ?",
                        (user_id, device_id),
                    )
                )[0][0]
                bundle = Bundle(
                    user_id=user_id,
                    device_id=device_id,
                    registration_id=entry["registration_id"],
                    identity_key=entry["identity_key"],
                    signed_prekey=entry["ec"],
                    one_time_prekey=one_time,
                    kem_prekey=entry.get("kem"),
                )
                claimed.append(ClaimedBundle(bundle=bundle, remaining=int(remaining)))
        return claimed

    @_serialized
    async def put_envelopes(
        self,
        conversation_id: str,
        sender_id: str,
        client_id: str,
        envelopes: Sequence[Envelope],
        expires_at: float,
    ) -> None:
        db = self.db
        async with self._immediate():
            await db.executemany(
                "INSERT INTO e2e_envelopes (conversation_id, user_id, device_id, sender_id, "
                "client_id, type, ciphertext, expires_at) "
                "SELECT ?, user_id, device_id, ?, ?, ?, ?, ? FROM e2e_devices "
                "WHERE user_id = ? AND device_id = ? ON CONFLICT DO NOTHING",
                [
                    (
                        conversation_id,
                        sender_id,
                        client_id,
                        e.type,
                        e.ciphertext,
                        expires_at,
                        e.user_id,
                        e.device_id,
                    )
                    for e in envelopes
                ],
            )

    @_serialized
    async def device_envelopes(
        self,
        conversation_id: str,
        user_id: str,
        device_id: str,
        messages: Sequence[tuple[str, str]],
        now: float,
    ) -> dict[tuple[str, str], StoredEnvelope]:
        wanted = set(messages)
        if not wanted:
            return {}
        senders = sorted({sender for sender, _ in wanted})
        found: dict[tuple[str, str], StoredEnvelope] = {}
        for start in range(0, len(senders), _CHUNK):
            chunk = senders[start : start + _CHUNK]
            rows = await self._rows(
                "SELECT sender_id, client_id, type, ciphertext FROM e2e_envelopes "
                "WHERE conversation_id = ? AND user_id = ? AND device_id = ? "
                f"AND expires_at > ? AND sender_id IN ({', '.join('?' * len(chunk))})",
                (conversation_id, user_id, device_id, now, *chunk),
            )
            for r in rows:
                key = (r[0], r[1])
                if key in wanted:
                    found[key] = StoredEnvelope(type=r[2], ciphertext=bytes(r[3]))
        return found

    @_serialized
    async def delete_delivered_envelopes(
        self, conversation_id: str, user_id: str, device_id: str, seq: int
    ) -> int:
        cursor = await self.db.execute(
            "DELETE FROM e2e_envelopes WHERE conversation_id = ? AND user_id = ? "
            "AND device_id = ? AND EXISTS (SELECT 1 FROM messages m "
            "WHERE m.conversation_id = e2e_envelopes.conversation_id "
            "AND m.sender_id = e2e_envelopes.sender_id "
            "AND m.client_id = e2e_envelopes.client_id AND m.seq <= ?)",
            (conversation_id, user_id, device_id, seq),
        )
        return cursor.rowcount

    @_serialized
    async def purge_envelopes(self, now: float, limit: int) -> int:
        cursor = await self.db.execute(
            "DELETE FROM e2e_envelopes WHERE rowid IN ("
            "SELECT rowid FROM e2e_envelopes WHERE expires_at <= ? LIMIT ?)",
            (now, limit),
        )
        return cursor.rowcount

    @_serialized
    async def forget_message(self, conversation_id: str, sender_id: str, client_id: str) -> None:
        async with self._immediate():
            for table in ("e2e_envelopes", "e2e_blind_tokens"):
                await self.db.execute(
                    f"DELETE FROM {table} WHERE conversation_id = ? AND sender_id = ? "
                    "AND client_id = ?",
                    (conversation_id, sender_id, client_id),
                )

    @_serialized
    async def put_blind_tokens(
        self, conversation_id: str, sender_id: str, client_id: str, tokens: Sequence[bytes]
    ) -> None:
        if not tokens:
            return
        await self.db.executemany(
            "INSERT INTO e2e_blind_tokens (conversation_id, token, sender_id, client_id) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(conversation_id, t, sender_id, client_id) for t in dict.fromkeys(tokens)],
        )

    @_serialized
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
        rows = await self._rows(
            "SELECT m.seq FROM e2e_blind_tokens t JOIN messages m "
            "ON m.conversation_id = t.conversation_id AND m.sender_id = t.sender_id "
            "AND m.client_id = t.client_id "
            f"WHERE t.conversation_id = ? AND t.token IN ({', '.join('?' * len(wanted))}) "
            "AND NOT m.deleted AND m.seq < ? AND NOT EXISTS ("
            "SELECT 1 FROM hidden_messages h WHERE h.conversation_id = m.conversation_id "
            "AND h.user_id = ? AND h.seq = m.seq) "
            "GROUP BY m.seq HAVING count(*) = ? ORDER BY m.seq DESC LIMIT ?",
            (
                conversation_id,
                *wanted,
                before_seq if before_seq is not None else 2**63 - 1,
                viewer_id,
                len(wanted),
                limit,
            ),
        )
        return [r[0] for r in rows]
