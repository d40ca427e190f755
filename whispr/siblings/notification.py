"""The notification service: push requests for members with no device connected.

:meth:`Notifier.push` never waits: it puts the request in a bounded outbox,
and sender tasks deliver it. A request that fails is retried with exponential
backoff and jitter (0.5 s, 1 s, 2 s... up to 30 s, 8 attempts in all, about
2 minutes), so a notification service outage shorter than that loses nothing;
the request's id makes retries safe. Nothing is dropped silently: a request
that fails every attempt is counted ``failed`` and logged, one that finds the
outbox full is counted ``dropped`` and logged, and what is still waiting when
the node stops (after up to 2 s of flushing) is counted ``unsent`` and logged
with its number. Not configured: requests are counted ``skipped`` (at debug
level), since a node without a notification service has nobody to push to.

Requests carry metadata only (see ``proto/notification/v1``), never content.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from dataclasses import dataclass
from typing import Final

import structlog

from whispr.grpc.gen.notification.v1 import notification_pb2, notification_pb2_grpc
from whispr.siblings.client import SiblingClient, SiblingUnavailable

__all__ = ["Notifier", "PushRequest"]

log = structlog.get_logger("whispr.siblings")

#: Requests waiting at most; beyond, new ones are dropped (and counted).
OUTBOX_SIZE: Final = 10_000
#: Requests sent at the same time.
SENDERS: Final = 4
#: Attempts per request before it counts as failed.
MAX_ATTEMPTS: Final = 8
FIRST_BACKOFF_S: Final = 0.5
MAX_BACKOFF_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class PushRequest:
    """One push: who, about which message. No content, by design."""

    request_id: str
    user_id: str
    conversation_id: str
    message_id: str
    seq: int
    sender_id: str
    kind: str
    sent_at: float
    title: str | None = None

    def to_pb(self) -> notification_pb2.SendPushRequest:
        return notification_pb2.SendPushRequest(
            request_id=self.request_id,
            user_id=self.user_id,
            conversation_id=self.conversation_id,
            message_id=self.message_id,
            seq=self.seq,
            sender_id=self.sender_id,
            kind=self.kind,
            sent_at_ms=int(self.sent_at * 1000),
            title=self.title or "",
        )


class Notifier:
    """The outbox of push requests and its sender tasks."""

    def __init__(
        self,
        client: SiblingClient,
        *,
        outbox_size: int = OUTBOX_SIZE,
        max_attempts: int = MAX_ATTEMPTS,
        first_backoff_s: float = FIRST_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
    ) -> None:
        self.client = client
        self.max_attempts = max_attempts
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self._outbox: asyncio.Queue[tuple[PushRequest, int]] = asyncio.Queue(outbox_size)
        self._waiting_retry: dict[PushRequest, asyncio.TimerHandle] = {}
        self._in_flight = 0
        self._senders: list[asyncio.Task[None]] = []
        self._closed = False
        #: Requests by outcome since start (also in the metrics): sent, retried, failed,
        #: dropped, unsent, skipped.
        self.counts: Counter[str] = Counter()

    @property
    def configured(self) -> bool:
        return self.client.configured

    @property
    def pending(self) -> int:
        """Requests not yet sent nor given up: queued, being sent, or waiting to retry."""
        return self._outbox.qsize() + self._in_flight + len(self._waiting_retry)

    def start(self) -> None:
        if self.configured and not self._senders:
            self._senders = [
                asyncio.get_running_loop().create_task(self._send_loop(), name=f"push-{n}")
                for n in range(SENDERS)
            ]

    def push(self, request: PushRequest) -> None:
        """Queue ``request`` for sending; never waits (see the module's docstring)."""
        if not self.configured:
            self._count("skipped")
            log.debug("push skipped: no notification service", user_id=request.user_id)
            return
        if self._closed:
            self._count("unsent")
            log.warning("push after close: not sent", request_id=request.request_id)
            return
        self._enqueue(request, 1)

    async def close(self, flush_s: float = 2.0) -> None:
        """Flush for up to ``flush_s`` seconds, then stop and count what is left ``unsent``."""
        self._closed = True
        if self._senders:
            for request, timer in list(self._waiting_retry.items()):
                timer.cancel()  # retry now rather than after the node is gone
                del self._waiting_retry[request]
                self._enqueue(request, self.max_attempts)  # one last attempt
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox.join(), flush_s)
        left = self.pending  # before the senders stop: those in flight are not sent either
        for task in self._senders:
            task.cancel()
        await asyncio.gather(*self._senders, return_exceptions=True)
        self._senders = []
        if left:
            self._count("unsent", left)
            log.warning("push requests not sent before stopping", count=left)
        while not self._outbox.empty():
            self._outbox.get_nowait()
            self._outbox.task_done()
        for timer in self._waiting_retry.values():
            timer.cancel()
        self._waiting_retry.clear()

    # -- sending --------------------------------------------------------------------------

    def _enqueue(self, request: PushRequest, attempt: int) -> None:
        try:
            self._outbox.put_nowait((request, attempt))
        except asyncio.QueueFull:
            self._count("dropped")
            log.warning(
                "push dropped: the outbox is full",
                request_id=request.request_id,
                outbox=self._outbox.maxsize,
            )

    async def _send_loop(self) -> None:
        while True:
            request, attempt = await self._outbox.get()
            self._in_flight += 1
            try:
                await self._send(request, attempt)
            finally:
                self._in_flight -= 1
                self._outbox.task_done()

    async def _send(self, request: PushRequest, attempt: int) -> None:
        try:
            await self.client.call("SendPush", request.to_pb())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # unavailable, or an answer that is an error
            if attempt >= self.max_attempts or self._closed:
                self._count("failed")
                log.warning(
                    "push failed for good",
                    request_id=request.request_id,
                    attempts=attempt,
                    error=str(exc) if isinstance(exc, SiblingUnavailable) else repr(exc),
                )
                return
            self._count("retried")
            delay = min(self.max_backoff_s, self.first_backoff_s * 2 ** (attempt - 1))
            delay *= random.uniform(0.5, 1.0)  # jitter: retries of one outage spread out
            self._waiting_retry[request] = asyncio.get_running_loop().call_later(
                delay, self._retry, request, attempt + 1
            )
            return
        self._count("sent")

    def _retry(self, request: PushRequest, attempt: int) -> None:
        if self._waiting_retry.pop(request, None) is not None:
            self._enqueue(request, attempt)

    def _count(self, outcome: str, n: int = 1) -> None:
        self.counts[outcome] += n
        self.client.metrics.pushes.add(n, {"outcome": outcome})


SERVICE = notification_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name
STUB = notification_pb2_grpc.NotificationServiceStub
