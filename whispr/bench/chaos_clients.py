"""The chaos run's clients: they keep a connection to some live node and retry their sends.

Each member behaves as a careful real client would under faults, and records what the checker
(:mod:`whispr.bench.chaos_check`) needs:

* a dropped connection is reopened, to any node that is up, and the conversation rejoined
  with ``last_seq`` = the highest seq below which it holds everything (not the highest seen:
  a live delivery lost to a broker outage leaves a hole that only catch-up from below fills);
* a send keeps its client id over every retry, so the server's deduplication is what stands
  between a lost reply and a duplicate; it is retried on any error until acknowledged or
  ``give_up_s`` after it began, then given up with the last error as its reason;
* every delivery is kept, tagged with the connection (session) it came on and when it came,
  and each session with when its join was answered and when it ended (for the delivery
  bound: a client is held to it only while joined).

On the wire it is the load generator's own client (:class:`~whispr.bench.wsclient.BenchClient`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from whispr.auth import issue_token
from whispr.bench.chaos_check import Delivery, Send
from whispr.bench.wsclient import BenchClient
from whispr.client import ReplyError, ServerEvent
from whispr.config import DEV_JWT_SECRET

__all__ = ["Journal", "Member"]

#: How long one push may wait for its reply before it counts as an error and is retried.
PUSH_TIMEOUT_S = 10.0


@dataclass
class Journal:
    """What all the clients saw, for the checker and for the faults' recovery times."""

    sends: list[Send] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    #: Monotonic times of acknowledgements.
    acks: list[float] = field(default_factory=list)
    #: (received at, sent at, sender's node, receiver's node).
    deliveries: list[tuple[float, float, str, str]] = field(default_factory=list)
    #: (member, dropped at, rejoined at or None).
    outages: list[tuple[str, float, float | None]] = field(default_factory=list)
    #: (monotonic time, reason) of each refused or failed push of a send.
    failures: list[tuple[float, str]] = field(default_factory=list)


@dataclass(eq=False)
class Member:
    """One conversation member's client."""

    user: str
    topic: str
    home: int
    live_nodes: Callable[[], list[tuple[str, str]]]
    journal: Journal
    give_up_s: float
    node: str = ""
    client: BenchClient | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    below: int = 0
    above: set[int] = field(default_factory=set)
    deliveries: list[Delivery] = field(default_factory=list)
    joins: list[int] = field(default_factory=list)
    #: Per session (as ``joins``): [joined at or None, closed at or None].
    sessions: list[list[float | None]] = field(default_factory=list)
    sent: int = 0
    #: Set once a removal of this member was acknowledged: from then on its errors are final.
    removed_at: float | None = None
    #: The send under way: (client id, began), for the checker when the run ends mid-send.
    current: tuple[str, float] | None = None
    _token: str = ""

    def on_event(self, event: ServerEvent) -> None:
        if event.event != "new_message":
            return
        message = event.payload["message"]
        seq = int(message["seq"])
        now = time.monotonic()
        self.deliveries.append(Delivery(seq, len(self.joins) - 1, now))
        metadata = message.get("metadata") or {}
        if "t" in metadata:
            sent = (now, float(metadata["t"]), str(metadata.get("node")), self.node)
            self.journal.deliveries.append(sent)
        if seq > self.below:
            self.above.add(seq)
        while self.below + 1 in self.above:
            self.below += 1
            self.above.discard(self.below)

    async def maintain(self, stop: asyncio.Event) -> None:
        """Stay connected and joined until ``stop``: reconnect to a live node on every drop."""
        if not self._token:
            self._token = issue_token(
                self.user, secret=DEV_JWT_SECRET, device_id="chaos", ttl_s=86_400
            )
        attempt = 0
        dropped: float | None = None
        while not stop.is_set():
            if self.removed_at is not None and attempt > 0:
                break  # removed, and a rejoin was refused: nothing more to wait for
            nodes = self.live_nodes()
            if not nodes:
                await asyncio.sleep(0.5)
                continue
            name, url = nodes[(self.home + attempt) % len(nodes)]
            attempt += 1
            self.joins.append(self.below)
            session: list[float | None] = [None, None]
            self.sessions.append(session)
            try:
                self.client = await BenchClient.connect(url, self._token, self.on_event)
                self.node = name
                await self.client.join(self.topic, {"last_seq": self.below})
                session[0] = time.monotonic()
            except Exception as exc:
                session[1] = time.monotonic()
                self.journal.errors[f"join: {_reason(exc)}"] += 1
                await self._drop_client()
                await asyncio.sleep(min(2.0, 0.2 * attempt) * random.uniform(0.5, 1.5))
                continue
            if dropped is not None:
                self.journal.outages.append((self.user, dropped, time.monotonic()))
            attempt = 0
            self.connected.set()
            closed = asyncio.ensure_future(self.client.wait_closed())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait([closed, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            self.connected.clear()
            session[1] = time.monotonic()
            if stop.is_set():
                closed.cancel()
                break
            dropped = time.monotonic()
            self.journal.errors["connection dropped"] += 1
            self.client = None
        await self._drop_client()

    async def reconnect(self) -> None:
        """Close the connection; :meth:`maintain` opens another and catches up from ``below``."""
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close()

    async def send_loop(self, interval: float, stop: asyncio.Event) -> None:
        """Send one message every ``interval`` s or so, each until acknowledged or given up."""
        await asyncio.sleep(random.uniform(0, interval))
        while not stop.is_set():
            # A removed member keeps trying for a few seconds, as a client not yet told would:
            # each of those sends must be refused.
            if self.removed_at is not None and time.monotonic() - self.removed_at > 5:
                return
            await self.send_one()
            await asyncio.sleep(interval * random.uniform(0.5, 1.5))

    async def send_one(self) -> None:
        self.sent += 1
        client_id = f"{self.user}-{self.sent}"
        began = time.monotonic()
        self.current = (client_id, began)
        reason = "never connected"
        while True:
            left = self.give_up_s - (time.monotonic() - began)
            if left <= 0:
                self._record(client_id, began, (), reason)
                return
            if self.removed_at is not None and not self.connected.is_set():
                self._record(client_id, began, (), f"removed ({reason})")
                return
            try:
                await asyncio.wait_for(self.connected.wait(), min(left, 1.0))
            except TimeoutError:
                continue
            client = self.client
            if client is None:
                await asyncio.sleep(0.05)
                continue
            payload = {
                "client_id": client_id,
                "content": f"chaos {client_id}",
                "metadata": {"t": time.time(), "node": self.node},
            }
            try:
                reply = await client.push(
                    self.topic, "send_message", payload, timeout=min(PUSH_TIMEOUT_S, left)
                )
            except Exception as exc:
                reason = _reason(exc)
                self.journal.errors[f"send: {reason}"] += 1
                self.journal.failures.append((time.monotonic(), reason))
                if self.removed_at is not None:
                    self._record(client_id, began, (), f"removed ({reason})")
                    return
                if reason == "unmatched topic":
                    await self.reconnect()  # the channel ended under a live socket: rejoin
                await asyncio.sleep(random.uniform(0.25, 1.0))
                continue
            self.journal.acks.append(time.monotonic())
            self._record(client_id, began, (int(reply["seq"]),), None)
            return

    def _record(
        self, client_id: str, began: float, seqs: tuple[int, ...], gave_up: str | None
    ) -> None:
        ended = time.monotonic()
        self.current = None
        self.journal.sends.append(
            Send(self.topic, self.user, client_id, began, ended, seqs, gave_up)
        )

    async def _drop_client(self) -> None:
        client, self.client = self.client, None
        self.connected.clear()
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()


def _reason(exc: BaseException) -> str:
    """A short, countable name for what went wrong."""
    if isinstance(exc, ReplyError):
        return exc.reason or str(exc.response)[:60]
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionError | OSError):
        return "connection closed" if isinstance(exc, ConnectionError) else "connect refused"
    return type(exc).__name__
