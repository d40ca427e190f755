"""Revoked tokens: what the backends revoke, kept in the store, checked at every connect.

A backend revokes (``ServerApi.RevokeTokens``, docs/grpc.md) every token of a user, every
token of one of their devices, or one token by its ``jti``. The revocation is written to the
store first (it survives restarts of every node and of Redis), then announced to every node
on the broker's control topic (:mod:`whispr.control`).

Each node keeps the revocations in memory (:class:`RevocationList`), so the check at the
handshake is two dict lookups and a set lookup, whatever the number of revocations: the
connect path never asks the store. The list is read whole from the store when the gateway
starts, then kept current by the control topic's events and, for an event that was lost
(Redis away, a node restarting), by reading the revocations newer than the last read every
:data:`REFRESH_S`; so a revocation is enforced on every node within that bound at worst.

What "revoked" means, by kind:

- ``user``: every token of the user whose ``iat`` is at or before the revocation's second
  (a token without ``iat`` is refused too): a token issued afterwards, in a later second,
  is accepted. ``iat`` is whole seconds, so the second of the revocation is refused whole.
- ``device``: the same, for the tokens naming that device (``device`` claim).
- ``jti``: the one token with that ``jti`` claim, whenever it was issued.

A revocation is kept until its ``expires_at`` (by default :data:`REVOCATION_TTL_S` after it
is made, which must outlive the longest-lived token the issuer signs; for a ``jti``, the
token's own expiry when the caller gives it): after that, every token it refused has
expired anyway.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import Final, Literal, Protocol, TypeVar

import msgspec

from whispr.auth import Identity

__all__ = [
    "REFRESH_S",
    "REVOCATION_TTL_S",
    "Revocation",
    "RevocationKind",
    "RevocationList",
    "RevocationStore",
    "matching",
]

#: Seconds a revocation is kept by default: longer than any token lives.
REVOCATION_TTL_S: Final = 30 * 86_400.0
#: Seconds between each node's reads of the revocations made since its last read.
REFRESH_S: Final = 10.0
#: How far back each refresh reads before its last one (revocations committed out of order).
_REREAD_S: Final = 60.0
#: One refresh in this many reads every live revocation (and forgets the expired ones).
_FULL_READ_EVERY: Final = 360

RevocationKind = Literal["user", "device", "jti"]
K = TypeVar("K")


class Revocation(msgspec.Struct, frozen=True, kw_only=True):
    """One revocation, as stored and as announced on the control topic."""

    id: str
    kind: RevocationKind
    user_id: str | None = None
    device_id: str | None = None
    jti: str | None = None
    #: ``user``, ``device``: tokens issued (``iat``) at or before this second are refused.
    issued_before: float
    #: When it was made.
    at: float
    #: When it may be forgotten.
    expires_at: float
    #: Why (recorded; the close reason of the connections it closes).
    reason: str


class RevocationStore(Protocol):
    """Where revocations are kept (``PostgresStore`` and ``SqliteStore`` implement it)."""

    async def add_revocation(self, revocation: Revocation) -> None:
        """Keep ``revocation`` (one with the same id already kept is left as is)."""
        ...

    async def revocations_since(self, at: float, now: float) -> list[Revocation]:
        """The revocations made at or after ``at`` that have not expired at ``now``."""
        ...


class RevocationList:
    """One node's revocations in memory; see the module's docstring."""

    def __init__(self, store: RevocationStore) -> None:
        self.store = store
        #: user id -> the latest ``issued_before`` of the user's revocations.
        self._users: dict[str, tuple[float, str]] = {}
        #: (user id, device id) -> the same, for device revocations.
        self._devices: dict[tuple[str, str], tuple[float, str]] = {}
        #: jti -> why.
        self._jtis: dict[str, str] = {}
        #: Revocations applied, by id, with their expiry (to forget them).
        self._known: dict[str, float] = {}
        #: The ``at`` from which the next refresh reads.
        self._read_from = 0.0
        self._refreshes = 0

    def __len__(self) -> int:
        return len(self._known)

    def refused(self, identity: Identity) -> str | None:
        """Why ``identity``'s token is revoked, or None if it is not (the connect check)."""
        if identity.jti is not None:
            reason = self._jtis.get(identity.jti)
            if reason is not None:
                return reason
        user = self._users.get(identity.user_id)
        if user is not None and _issued_by(identity, user[0]):
            return user[1]
        device = self._devices.get((identity.user_id, identity.device_id))
        if device is not None and _issued_by(identity, device[0]):
            return device[1]
        return None

    def apply(self, revocations: Iterable[Revocation]) -> list[Revocation]:
        """Take ``revocations`` in; return those that were new to this node."""
        new: list[Revocation] = []
        for r in revocations:
            if r.id in self._known:
                continue
            self._known[r.id] = r.expires_at
            new.append(r)
            if r.kind == "jti" and r.jti is not None:
                self._jtis[r.jti] = r.reason
            elif r.kind == "user" and r.user_id is not None:
                _keep_latest(self._users, r.user_id, r)
            elif r.kind == "device" and r.user_id is not None and r.device_id is not None:
                _keep_latest(self._devices, (r.user_id, r.device_id), r)
        return new

    async def refresh(self, now: float | None = None) -> list[Revocation]:
        """Read the revocations made since the last read; return the ones new to this node.

        Every :data:`_FULL_READ_EVERY` refreshes, all live ones are read instead and the list
        is rebuilt from them, which forgets the expired ones. Raises what the store raises
        (``WhisprError(unavailable)``): the caller retries at its next interval.
        """
        now = time.time() if now is None else now
        full = self._refreshes % _FULL_READ_EVERY == 0
        read = await self.store.revocations_since(0.0 if full else self._read_from, now)
        self._refreshes += 1
        self._read_from = now - _REREAD_S
        if not full:
            return self.apply(read)
        fresh = RevocationList(self.store)
        fresh.apply(read)
        new = [r for r in read if r.id not in self._known]
        self._users, self._devices, self._jtis = fresh._users, fresh._devices, fresh._jtis
        self._known = fresh._known
        return new


def _keep_latest(index: dict[K, tuple[float, str]], key: K, r: Revocation) -> None:
    current = index.get(key)
    if current is None or current[0] < r.issued_before:
        index[key] = (r.issued_before, r.reason)


def _issued_by(identity: Identity, issued_before: float) -> bool:
    """Whether the token was issued at or before the revocation's second."""
    return identity.issued_at is None or identity.issued_at <= math.floor(issued_before)


def matching(revocations: Sequence[Revocation], identity: Identity) -> Revocation | None:
    """The first of ``revocations`` that refuses ``identity`` (closing open connections)."""
    for r in revocations:
        if r.kind == "jti":
            if identity.jti is not None and identity.jti == r.jti:
                return r
        elif (
            identity.user_id == r.user_id
            and (r.kind == "user" or identity.device_id == r.device_id)
            and _issued_by(identity, r.issued_before)
        ):
            return r
    return None
