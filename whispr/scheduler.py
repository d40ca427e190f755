"""The node's scheduler: sends scheduled messages and ends disappearing ones when they are due.

Both are durable timer queues in the store (``actors.ports.ScheduleStore``); any node may
serve them, and exactly one serves each entry, once:

- **One timer per node, no polling.** The scheduler keeps one ``call_later`` for the earliest
  due time it knows. When it fires, it claims what is due (``claim_schedules``,
  ``claim_expiries``: on PostgreSQL ``FOR UPDATE SKIP LOCKED``, each entry's due time moved
  to the end of a lease), does it, and reads the next due time: the head of each queue's index
  (``next_due``), never a scan. Between two due times an idle node does nothing but, every
  ``max_sleep_s``, that one read of two index heads (in case an announcement was lost).
- **Woken across the cluster.** A schedule added or changed, and a disappearing message
  written, on any node is announced on the broker's ``scheduler`` topic with its due time;
  every node's scheduler re-arms its timer if that time comes first.
- **Exactly once.** Concurrent claims never share an entry. A node that dies holding a claim
  leaves it to the end of its lease (``lease_s``), after which another node's timer (armed for
  the lease's end by ``next_due``) claims it again. What it then does is idempotent: a
  schedule's message is sent with a client id derived from the schedule's id, so a message
  already written is found, not written twice; an expiry already done changes nothing.
- **Late ones first, in order.** After a restart (of a node or the whole cluster) everything
  overdue is due at once: claimed oldest first, in ``send_at`` order, a batch at a time; each
  conversation's schedules are sent one after the other in that order, different
  conversations' side by side. A message sent more than a second after its ``send_at`` records
  ``late`` (actors/scheduling.py).

A failure of the store while claiming or sending is logged and retried after ``retry_s``; the
claims taken meanwhile are served again when their leases end.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import math
import time
from collections.abc import Callable, Sequence
from typing import Final

import msgspec
import structlog
from opentelemetry.metrics import Counter, Histogram

from actors.broker import Broker, Subscription
from actors.errors import WhisprError
from actors.events import decode_event
from actors.messaging import Messaging
from actors.ports import ScheduleStore
from actors.schedules import Schedules
from actors.scheduling import SCHEDULER_TOPIC, Expiry, Schedule
from supervisors import AsyncioActor
from whispr.config import Settings
from whispr.slot import Slot
from whispr.telemetry import SECONDS_BUCKETS, get_meter

__all__ = ["BATCH", "Scheduler", "SchedulerService"]

log = structlog.get_logger("whispr.scheduler")

#: Entries of each queue claimed at a time.
BATCH: Final = 100


@functools.cache
def _metrics() -> tuple[Counter, Histogram, Counter]:
    """The process's scheduler metrics (created on first use)."""
    meter = get_meter("whispr.scheduler")
    return (
        meter.create_counter(
            "whispr_scheduled_messages",
            description="scheduled messages served, by outcome (sent, refused, retried)",
        ),
        meter.create_histogram(
            "whispr_schedule_lateness_seconds",
            unit="s",
            description="how long after its send_at a scheduled message was sent (durable)",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        ),
        meter.create_counter(
            "whispr_messages_expired",
            description="disappearing messages expired, by outcome (expired, retried)",
        ),
    )


class _Timer(msgspec.Struct):
    at: float


_decode_timer = msgspec.json.Decoder(_Timer).decode


class Scheduler:
    """One node's timer over the store's two queues; see the module's docstring."""

    def __init__(
        self,
        schedules: Schedules,
        store: ScheduleStore,
        broker: Broker,
        *,
        lease_s: float = 30.0,
        max_sleep_s: float = 60.0,
        retry_s: float = 1.0,
        batch: int = BATCH,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.schedules = schedules
        self.store = store
        self.broker = broker
        self.lease_s = lease_s
        self.max_sleep_s = max_sleep_s
        self.retry_s = retry_s
        self.batch = batch
        self.clock = clock
        #: When the timer fires next (epoch seconds); None while a run is on.
        self.armed_at: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._run: asyncio.Task[None] | None = None
        #: An announcement came during a run for a time already due: run again after it.
        self._again = False
        #: The earliest time announced during a run (its own read of the next due time may
        #: have come before that schedule was written): the timer is armed for it at most.
        self._announced: float | None = None
        self._subscription: Subscription | None = None
        self._closed = False
        #: Told how late each schedule was sent (seconds after its send_at): the benchmark.
        self.on_sent: Callable[[Schedule, float], None] | None = None

    async def start(self) -> None:
        """Listen for announcements, then look at the queues once (what is overdue goes)."""
        self._subscription = await self.broker.subscribe(SCHEDULER_TOPIC, self._on_event)
        self._arm(self.clock())

    async def close(self) -> None:
        self._closed = True
        if self._subscription is not None:
            self._subscription.cancel()
            self._subscription = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._run is not None:
            self._run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._run
            self._run = None

    # -- the timer ---------------------------------------------------------------------------

    def _on_event(self, _topic: str, data: bytes) -> None:
        try:
            at = _decode_timer(decode_event(data).payload).at
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            log.warning("undecodable scheduler event dropped")
            return
        if math.isfinite(at):
            self.wake(at)

    def wake(self, at: float) -> None:
        """Something is due at ``at``: fire then, unless the timer fires sooner already."""
        if self._closed:
            return
        if self._run is not None:  # running: it arms the timer when it ends
            if at <= self.clock():
                self._again = True
            elif self._announced is None or at < self._announced:
                self._announced = at
            return
        if self.armed_at is None or at < self.armed_at:
            self._arm(at)

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.armed_at = at
        delay = max(0.0, at - self.clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.armed_at = None
        if not self._closed and self._run is None:
            self._run = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        next_at: float
        try:
            while True:
                self._again = False
                more = await self.run_once()
                if not (more or self._again):
                    break
            due = await self.store.next_due()
            now = self.clock()
            next_at = now + self.max_sleep_s if due is None else min(due, now + self.max_sleep_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = exc.reason.value if isinstance(exc, WhisprError) else type(exc).__name__
            log.warning("scheduler run failed; retrying", reason=reason, error=str(exc))
            next_at = self.clock() + self.retry_s
        finally:
            self._run = None
        announced, self._announced = self._announced, None
        if announced is not None:
            next_at = min(next_at, announced)
        if not self._closed:
            self._arm(next_at)

    async def run_once(self) -> bool:
        """Claim and serve what is due now; whether a queue had a full batch (more may be)."""
        now = self.clock()
        claimed = await self.store.claim_schedules(now, self.lease_s, self.batch)
        expiries = await self.store.claim_expiries(now, self.lease_s, self.batch)
        await asyncio.gather(
            *(self._send_in_order(group) for group in _by_conversation(claimed)),
            *(self._expire(expiry) for expiry in expiries),
        )
        return len(claimed) == self.batch or len(expiries) == self.batch

    async def _send_in_order(self, schedules: Sequence[Schedule]) -> None:
        """One conversation's due schedules, one after the other in ``send_at`` order."""
        served, lateness, _ = _metrics()
        for schedule in schedules:
            try:
                message = await self.schedules.dispatch(schedule)
            except WhisprError as exc:  # unavailable: served again when its lease ends
                served.add(1, {"outcome": "retried"})
                log.warning(
                    "scheduled message not sent; retried after its lease",
                    schedule_id=schedule.id,
                    reason=exc.reason.value,
                )
                return
            if message is None:
                served.add(1, {"outcome": "refused"})
                continue
            late = self.clock() - schedule.send_at
            served.add(1, {"outcome": "sent"})
            lateness.record(max(0.0, late))
            if self.on_sent is not None:
                self.on_sent(schedule, late)

    async def _expire(self, expiry: Expiry) -> None:
        expired = _metrics()[2]
        try:
            await self.schedules.expire(expiry)
            expired.add(1, {"outcome": "expired"})
        except WhisprError as exc:
            expired.add(1, {"outcome": "retried"})
            log.warning(
                "expiry not done; retried after its lease",
                conversation_id=expiry.conversation_id,
                seq=expiry.seq,
                reason=exc.reason.value,
            )


def _by_conversation(claimed: Sequence[Schedule]) -> list[list[Schedule]]:
    ordered = sorted(claimed, key=lambda s: (s.conversation_id, s.send_at, s.id))
    return [list(g) for _, g in itertools.groupby(ordered, key=lambda s: s.conversation_id)]


class SchedulerService(AsyncioActor):
    """Runs the node's :class:`Scheduler` and publishes its :class:`Schedules` API (for the
    gateway and gRPC, started after it)."""

    def __init__(
        self,
        settings: Settings,
        *,
        messaging: Messaging,
        store: ScheduleStore,
        broker: Broker,
        out: Slot[Schedules],
    ) -> None:
        super().__init__()
        self.settings = settings
        self.messaging = messaging
        self.store = store
        self.broker = broker
        self.out = out
        self.scheduler: Scheduler | None = None

    async def on_start(self) -> None:
        schedules = Schedules(self.messaging, self.store)
        scheduler = Scheduler(
            schedules,
            self.store,
            self.broker,
            lease_s=self.settings.scheduler_lease_s,
            max_sleep_s=self.settings.scheduler_max_sleep_s,
        )
        await scheduler.start()
        self.scheduler = scheduler
        self.out.set(schedules)
        log.info("service started", service="scheduler")

    async def on_stop(self) -> None:
        self.out.clear()
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None:
            await scheduler.close()
        log.info("service stopped", service="scheduler")
