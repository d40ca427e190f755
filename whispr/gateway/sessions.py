"""A node's open connections by user, and the backends' orders about them.

:class:`Sessions` indexes the node's connections by user, so that an order about one user
(disconnect them, their token was revoked) finds their connections without going through
every connection of the node. It follows the control topic (:mod:`whispr.control`) and
keeps the node's :class:`~whispr.revocations.RevocationList` current: read whole when the
gateway starts, updated by the topic's ``revoked`` events and by a read of the store every
:data:`~whispr.revocations.REFRESH_S`; every revocation new to the node closes the node's
connections whose token it revokes.

Connections it closes get :data:`DISCONNECT_CODE` and the reason the backend gave.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Final, Protocol

import msgspec
import structlog

from actors.broker import Broker, Subscription
from whispr import control
from whispr.auth import Identity
from whispr.protocol import CloseCode
from whispr.revocations import REFRESH_S, Revocation, RevocationList, matching

__all__ = ["DISCONNECT_CODE", "Session", "Sessions"]

log = structlog.get_logger("whispr.gateway")

#: The close code of a connection a backend disconnected or whose token it revoked.
DISCONNECT_CODE: Final = CloseCode.DISCONNECTED


class Session(Protocol):
    """What the index needs of a connection (``ConnectionActor``'s public face)."""

    identity: Identity

    def close(self, code: int, reason: str) -> None:
        """Close the socket (once)."""


class Sessions:
    """The node's connections by user; the control topic's follower; see the module."""

    def __init__(self, revocations: RevocationList | None = None) -> None:
        self.revocations = revocations
        self._by_user: dict[str, set[Session]] = {}
        self._subscription: Subscription | None = None
        self._refresher: asyncio.Task[None] | None = None

    # -- the index ------------------------------------------------------------------------

    def add(self, session: Session) -> None:
        """A connection opened."""
        self._by_user.setdefault(session.identity.user_id, set()).add(session)

    def discard(self, session: Session) -> None:
        """A connection ended."""
        user_id = session.identity.user_id
        sessions = self._by_user.get(user_id)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._by_user[user_id]

    def of_user(self, user_id: str) -> list[Session]:
        """The user's open connections on this node."""
        return list(self._by_user.get(user_id, ()))

    def refused(self, identity: Identity) -> str | None:
        """Why a connection with ``identity`` is refused (its token is revoked), or None."""
        return None if self.revocations is None else self.revocations.refused(identity)

    # -- orders ---------------------------------------------------------------------------

    def disconnect(self, user_id: str, device_id: str | None, reason: str) -> int:
        """Close the user's connections (of one device when given); how many were closed."""
        closed = 0
        for session in self.of_user(user_id):
            if device_id is None or session.identity.device_id == device_id:
                session.close(DISCONNECT_CODE, reason)
                closed += 1
        return closed

    def close_revoked(self, revocations: Iterable[Revocation]) -> int:
        """Close the connections whose token one of ``revocations`` revokes."""
        closed = 0
        by_user: dict[str | None, list[Revocation]] = {}
        for r in revocations:
            by_user.setdefault(r.user_id if r.kind != "jti" else None, []).append(r)
        jtis = by_user.pop(None, [])
        candidates: Iterable[Session]
        if jtis:  # a jti names no user: every connection of the node is a candidate
            candidates = [s for sessions in self._by_user.values() for s in sessions]
        else:
            candidates = [s for user in by_user for s in self.of_user(str(user))]
        for session in candidates:
            identity = session.identity
            found = matching([*by_user.get(identity.user_id, ()), *jtis], identity)
            if found is not None:
                session.close(DISCONNECT_CODE, found.reason)
                closed += 1
        return closed

    # -- life -----------------------------------------------------------------------------

    async def start(self, broker: Broker) -> None:
        """Follow the control topic; load the revocations (the node starts without them
        when the store is away, and reads them at the next refresh)."""
        self._subscription = await broker.subscribe(control.CONTROL_TOPIC, self._on_control)
        if self.revocations is not None:
            await self._refresh()
            self._refresher = asyncio.get_running_loop().create_task(
                self._refresh_forever(), name="revocations-refresh"
            )

    async def stop(self) -> None:
        """Stop following the topic and reading the store."""
        if self._subscription is not None:
            self._subscription.cancel()
            self._subscription = None
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None

    def _on_control(self, _topic: str, data: bytes) -> None:
        try:
            event = control.decode(data)
        except msgspec.DecodeError:
            log.warning("control event not understood", size=len(data))
            return
        if isinstance(event, control.Disconnect):
            self.disconnect(event.user_id, event.device_id, event.reason)
        elif self.revocations is not None:
            self.close_revoked(self.revocations.apply([event.revocation]))

    async def _refresh(self) -> None:
        assert self.revocations is not None
        try:
            new = await self.revocations.refresh()
        except Exception as exc:
            log.warning("revocations not read; enforced from the next read", error=str(exc))
            return
        if new:
            self.close_revoked(new)

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            await self._refresh()
