"""``AuditLog``: the one place security events are written.

Every source (the gateway's handshake and refusals, the gRPC servicer, the conversation
actors' membership changes) calls :meth:`AuditLog.record`, or :meth:`AuditLog.refused`
with the refusal it is about to send; nothing else writes audit records. Each record is

- logged at once, as one structured line with ``event="audit"`` (logger ``whispr.audit``),
  for a log collector;
- counted in ``whispr_audit_records_total`` by kind;
- queued for the store, where it can be queried by user and time (``whispr audit``).

Recording never waits and never raises: it is called from the paths that answer clients.
The queue is bounded (:data:`QUEUE_SIZE`); when it is full (the store is away or slower
than a flood of refusals), the record is dropped from the table (its log line is already
written) and counted in ``whispr_audit_dropped_total``. A background writer drains the
queue in batches, group commit as in ``supervisors/batching.py``: what arrives while one
batch is being written forms the next, with no timer. ``Batcher`` itself does not fit:
it answers each item's caller with a future and fails a batch to its callers, where
nobody waits for an audit record, the queue must be bounded, and a failed batch is
retried (with back-off) until the store is back.

The writer uses the store directly, not through the store's circuit breaker
(``whispr/store/breaker.py``): a slow audit write must not count against the message
path's breaker, and the writer's own back-off already spares a store that is down.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import time
from collections.abc import Callable
from typing import Any, Final

import structlog

from actors.errors import Reason, WhisprError
from actors.ids import new_id
from actors.model import MembershipChange
from whispr.audit.record import AuditKind, AuditRecord, AuditStore, Source
from whispr.store.breaker import is_outage
from whispr.telemetry import TalliedCounter

__all__ = ["MAX_BATCH", "QUEUE_SIZE", "AuditLog", "audit_counters"]

log = structlog.get_logger("whispr.audit")

#: Records waiting for the store before new ones are dropped (about 0.5 KB each).
QUEUE_SIZE: Final = 10_000
#: Records one write carries at most.
MAX_BATCH: Final = 500
#: Back-off of a failed write: from the first delay, doubling, up to the last.
RETRY_FIRST_S: Final = 0.5
RETRY_MAX_S: Final = 30.0
#: The longest ``reason`` kept: error messages may quote a library's words.
MAX_REASON: Final = 200
#: One rate-limit record per user (or address) per this many seconds; the next one says
#: how many refusals were left out meanwhile (``details.suppressed``). Recording costs
#: about 70 µs (mostly the log line), as much as a whole message: a client pushing on at
#: a spent budget must not cost that per push. Other kinds are rare by nature.
RATE_LIMITED_EVERY_S: Final = 10.0
#: Users (or addresses) whose last rate-limit record is remembered before the oldest
#: are forgotten.
_RATE_LIMITED_KEYS: Final = 10_000

#: The refusals that are security events, by where they are sent; any other refusal
#: (``invalid``, ``not_found``, ``unavailable``...) is not recorded.
_SOCKET_REFUSALS: Final = {
    Reason.UNAUTHORIZED: AuditKind.TOKEN_REFUSED,
    Reason.FORBIDDEN: AuditKind.PERMISSION_DENIED,
    Reason.NOT_MEMBER: AuditKind.PERMISSION_DENIED,
    Reason.RATE_LIMITED: AuditKind.RATE_LIMITED,
    Reason.TOO_MANY_CONNECTIONS: AuditKind.RATE_LIMITED,
}
_REFUSALS: Final[dict[Source, dict[Reason, AuditKind]]] = {
    "websocket": _SOCKET_REFUSALS,
    "longpoll": _SOCKET_REFUSALS,
    "http": {
        Reason.UNAUTHORIZED: AuditKind.TOKEN_REFUSED,
        Reason.FORBIDDEN: AuditKind.PERMISSION_DENIED,
        Reason.NOT_MEMBER: AuditKind.PERMISSION_DENIED,
        Reason.RATE_LIMITED: AuditKind.RATE_LIMITED,
    },
    "grpc": {
        Reason.UNAUTHORIZED: AuditKind.GRPC_AUTH_FAILED,
        Reason.FORBIDDEN: AuditKind.PERMISSION_DENIED,
        Reason.NOT_MEMBER: AuditKind.PERMISSION_DENIED,
        Reason.RATE_LIMITED: AuditKind.RATE_LIMITED,
    },
}


class _Counters:
    """The process's audit metrics (one instrument per name and process)."""

    def __init__(self) -> None:
        self.records = TalliedCounter(
            "whispr.audit", "whispr_audit_records", "security events recorded, by kind"
        )
        self.dropped = TalliedCounter(
            "whispr.audit",
            "whispr_audit_dropped",
            "audit records not stored (logged only): the queue was full, the store "
            "refused their batch, or the node stopped before the store took them",
        )


@functools.cache
def audit_counters() -> _Counters:
    """The process's audit counters (created on first use)."""
    return _Counters()


class AuditLog:
    """Records security events: logs them, counts them, and stores them in the background.

    ``store`` keeps the records; ``node`` names this node in them. :meth:`start` the
    writer on the event loop, :meth:`close` it to store what is queued before stopping.
    """

    def __init__(
        self,
        store: AuditStore,
        node: str,
        *,
        queue_size: int = QUEUE_SIZE,
        max_batch: int = MAX_BATCH,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.node = node
        self.queue_size = queue_size
        self.max_batch = max_batch
        self.clock = clock
        self._queue: collections.deque[AuditRecord] = collections.deque()
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        #: Records taken from the queue and not yet stored.
        self._writing = 0
        self._counters = audit_counters()
        #: Per user (or address): when its last rate-limit record was made, and the
        #: refusals left out since.
        self._limited: dict[str, tuple[float, int]] = {}

    @property
    def queued(self) -> int:
        """Records waiting for the store (the batch being written not included)."""
        return len(self._queue)

    # -- recording ------------------------------------------------------------------------

    def record(
        self,
        kind: AuditKind,
        *,
        user_id: str | None,
        reason: str,
        source: Source,
        actor: str | None = None,
        peer: str | None = None,
        **details: Any,
    ) -> None:
        """Record one event: its log line now, its row once the writer gets to it.

        Never waits, never raises (a full queue drops the row, counted).
        """
        record = AuditRecord(
            id=new_id(),
            at=self.clock(),
            kind=kind,
            user_id=user_id,
            actor=actor,
            reason=reason[:MAX_REASON],
            source=source,
            node=self.node,
            peer=peer,
            details=details,
        )
        log.info(
            "audit",
            audit_id=record.id,
            kind=kind.value,
            user_id=user_id,
            actor=actor,
            reason=record.reason,
            source=source,
            peer=peer,
            details=details,
        )
        self._counters.records.add(1, {"kind": kind.value})
        if self._closing or len(self._queue) >= self.queue_size:
            self._counters.dropped.add(1)
            return
        self._queue.append(record)
        self._wakeup.set()

    def refused(
        self,
        error: WhisprError,
        *,
        source: Source,
        user_id: str | None,
        actor: str | None = None,
        peer: str | None = None,
        **details: Any,
    ) -> None:
        """Record ``error``, a refusal about to be sent from ``source``, if it is a security
        event (see :data:`_REFUSALS`); other refusals are ignored."""
        kind = _REFUSALS[source].get(error.reason)
        if kind is None:
            return
        if kind is AuditKind.RATE_LIMITED:
            suppressed = self._left_out(user_id or peer or "")
            if suppressed is None:
                return
            details["suppressed"] = suppressed
        self.record(
            kind,
            user_id=user_id,
            reason=error.message,
            source=source,
            actor=actor,
            peer=peer,
            error=error.reason.value,
            **details,
        )

    def _left_out(self, key: str) -> int | None:
        """None when ``key``'s rate-limit refusal is left out (one was recorded less than
        :data:`RATE_LIMITED_EVERY_S` ago); else the refusals left out since the last."""
        now = self.clock()
        limited = self._limited
        last = limited.get(key)
        if last is not None and now - last[0] < RATE_LIMITED_EVERY_S:
            limited[key] = (last[0], last[1] + 1)
            return None
        if last is None and len(limited) >= _RATE_LIMITED_KEYS:
            for old in [k for k, (at, _) in limited.items() if now - at >= RATE_LIMITED_EVERY_S]:
                del limited[old]
            if len(limited) >= _RATE_LIMITED_KEYS:  # all recent: forget the oldest half
                for old in list(limited)[: _RATE_LIMITED_KEYS // 2]:
                    del limited[old]
        limited.pop(key, None)  # to the end: the dict stays in order of last record
        limited[key] = (now, 0)
        return 0 if last is None else last[1]

    def membership_changed(self, change: MembershipChange) -> None:
        """Record ``change``, made durable by a conversation actor of this node."""
        self.record(
            AuditKind.MEMBERSHIP_CHANGED,
            user_id=change.user_id,
            reason=change.change,
            source="conversation",
            actor=change.by,
            conversation_id=change.conversation_id,
            role=change.role,
        )

    # -- the writer -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the background writer on the running loop."""
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(
                self._drain(), name="audit-writer"
            )

    async def close(self, timeout: float = 5.0) -> None:
        """Stop taking records, store those queued (within ``timeout``), stop the writer.

        What could not be stored in time is counted as dropped.
        """
        self._closing = True
        self._wakeup.set()
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(writer), timeout)
            if not writer.done():
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
        lost = len(self._queue) + self._writing
        if lost:
            self._counters.dropped.add(lost)
            log.warning("audit records not stored before stopping", records=lost)
        self._queue.clear()
        self._writing = 0

    async def _drain(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = [queue.popleft() for _ in range(min(len(queue), self.max_batch))]
            self._writing = len(batch)
            if not await self._write(batch):
                return  # closing: close() counts what is left
            self._writing = 0

    async def _write(self, batch: list[AuditRecord]) -> bool:
        """Store ``batch``, retrying with back-off while the store is away; False when a
        write fails once the log is closing (the batch is then counted as dropped).

        A failure that is not an outage (the store refused the batch) would fail again:
        the batch is dropped, counted and logged, so it cannot hold up the ones after it.
        """
        delay = RETRY_FIRST_S
        while True:
            try:
                await self.store.append_audit(batch)
                return True
            except Exception as exc:
                if self._closing:
                    log.warning("audit write failed while stopping", error=str(exc))
                    return False
                if not is_outage(exc):
                    log.error(
                        "audit batch refused by the store; dropped",
                        records=len(batch),
                        error=str(exc),
                    )
                    self._counters.dropped.add(len(batch))
                    return True
                log.warning(
                    "audit write failed; retrying",
                    records=len(batch),
                    retry_in_s=delay,
                    error=str(exc),
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
