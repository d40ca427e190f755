"""Phoenix's long-poll transport: a connection for clients whose WebSocket cannot open.

phoenix.js's ``LongPoll`` (``transport: LongPoll``, or ``longPollFallbackMs``) speaks it, as
Phoenix's own server does (``Phoenix.Transports.LongPoll``); every response is a JSON
object whose ``status`` phoenix.js reads:

- ``GET`` without a session token opens a session: the token is checked like a WebSocket's
  (:meth:`~whispr.gateway.server.Gateway.admit`: same refusals, same per-address count), a
  :class:`~whispr.gateway.connection.ConnectionActor` is started over a
  :class:`LongPollTransport`, and the answer is ``{"status": 410, "token": <session token>}``
  (410 opens the session in phoenix.js);
- ``GET`` with the session token is a poll: ``200`` with the frames waiting (``messages``,
  each one Phoenix V2 JSON text), or ``204`` after :data:`POLL_WINDOW_S` without any;
  ``410`` when the session is gone (phoenix.js then reconnects, rejoins and catches up);
- ``POST`` with the session token carries the client's frames: one per line
  (``application/x-ndjson``; a line not starting with ``[`` is a base64 binary frame), at
  most :data:`MAX_BATCH`; ``{"status": 200}`` once they are handed to the connection (in
  order, under the same inbound credits as a WebSocket's), ``410`` for a session gone.

Everything above the wire is the WebSocket's: topics, events, limits, refusals, catch-up.
What differs is liveness: phoenix.js sends no heartbeat over long-poll, so a session is alive
while it polls, and one not polled for :data:`IDLE_S` is closed.

Sessions across nodes: a session lives on the node that opened it (its actor, its channels'
subscriptions). Its token is signed (HMAC-SHA256 under a key derived from the node's JWT
secret) and names that node and a random 128-bit session id. A request that a load balancer
sends to another node is routed there through the broker: it is published on the session's
topic (``longpoll:<id>``), the owner answers ``accepted`` at once and the result when it has
it, on the asking node's reply topic. No answer within :data:`ROUTE_TIMEOUT_S` means the
session is gone (``410``): its node stopped, and the client opens a new session, wherever
it lands. Nothing is lost either way: a frame taken by a poll whose answer never reached
the client makes phoenix.js reconnect, rejoin with its last ``seq`` and catch up.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import msgspec
import structlog
from pykka import ActorDeadError

from actors.broker import Broker, Subscription
from whispr.audit.record import Source
from whispr.auth import Identity
from whispr.gateway.connection import ConnectionActor, Inbound
from whispr.protocol import CloseCode, frames

if TYPE_CHECKING:
    from supervisors import Ref
    from whispr.gateway.server import Refusal

__all__ = [
    "IDLE_S",
    "MAX_BATCH",
    "MAX_BODY_BYTES",
    "POLL_WINDOW_S",
    "ROUTE_TIMEOUT_S",
    "Answer",
    "LongPollSessions",
    "LongPollTransport",
    "SessionTokens",
]

log = structlog.get_logger("whispr.gateway")

#: Seconds a poll waits for frames before answering 204 (Phoenix's ``window_ms``).
POLL_WINDOW_S: Final = 10.0
#: Seconds without a poll after which a session is closed (Phoenix's 1.5 windows).
IDLE_S: Final = 15.0
#: Seconds a node waits for a session's owner to acknowledge a routed request.
ROUTE_TIMEOUT_S: Final = 2.0
#: Frames in one POST (phoenix.js sends at most this many, as Phoenix reads).
MAX_BATCH: Final = 100
#: Bytes in one POST body.
MAX_BODY_BYTES: Final = 8 * 1024 * 1024
#: What the session token starts with: a JWT never does (``eyJ``), so both may ride in the
#: query's ``token`` parameters, as phoenix.js sends them (its ``params`` and the session's).
TOKEN_PREFIX: Final = "lp1."


class Answer(msgspec.Struct, omit_defaults=True, gc=False):
    """One response body, as phoenix.js reads it (``status`` in the JSON, not the HTTP's)."""

    status: int
    token: str | None = None
    messages: list[str] | None = None
    #: Why a session was refused (``unauthorized``, ``rate_limited``...), and in words.
    reason: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class Reply:
    """An answer and the HTTP status it goes with."""

    http: int
    answer: Answer

    def body(self) -> bytes:
        return msgspec.json.encode(self.answer)


_GONE: Final = Reply(200, Answer(410))
_OK: Final = Reply(200, Answer(200))


# -- the session token ------------------------------------------------------------------


class _Claims(msgspec.Struct, array_like=True, gc=False):
    node: str
    session: str


class SessionTokens:
    """Signs and reads session tokens: ``lp1.<claims>.<HMAC-SHA256>``, base64url."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"whispr longpoll session\x00" + secret.encode()).digest()

    def sign(self, node: str, session: str) -> str:
        claims = _b64(msgspec.json.encode(_Claims(node, session)))
        return f"{TOKEN_PREFIX}{claims}.{self._mac(claims)}"

    def read(self, token: str) -> tuple[str, str] | None:
        """The token's (node, session id), or None for anything not signed here."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 1024:
            return None
        claims, _, mac = token[len(TOKEN_PREFIX) :].partition(".")
        if not hmac.compare_digest(mac.encode(), self._mac(claims).encode()):
            return None
        try:
            decoded = msgspec.json.decode(_unb64(claims), type=_Claims)
        except (msgspec.DecodeError, binascii.Error, ValueError):
            return None
        return decoded.node, decoded.session

    def _mac(self, claims: str) -> str:
        return _b64(hmac.new(self._key, claims.encode(), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def session_token(values: Iterable[str]) -> str | None:
    """The session token among a request's ``token`` values (the others are JWTs)."""
    return next((v for v in values if v.startswith(TOKEN_PREFIX)), None)


def bearer_token(values: Iterable[str]) -> str | None:
    """The JWT among a request's ``token`` values (the first that is not a session's)."""
    return next((v for v in values if not v.startswith(TOKEN_PREFIX)), None)


# -- the transport ----------------------------------------------------------------------


class LongPollTransport:
    """A connection's frames, waiting for the client's next poll.

    What the client has not taken counts as unread (the actor disconnects a client whose
    unread frames pass ``outbound_buffer_bytes``, as it does a WebSocket's that does not
    read). Only the latest poll waits: a newer one answers the older with no messages.
    """

    source: Source = "longpoll"

    def __init__(self, peer: str, idle_s: float = IDLE_S) -> None:
        self._peer = peer
        self._idle_s = idle_s
        self._frames: list[str] = []
        self._bytes = 0
        self._wake = asyncio.Event()
        self._taken = asyncio.Event()
        self._poll = 0
        self._polling = False
        self._idle: asyncio.TimerHandle | None = None
        #: Set once the transport is closed: the session's reader then ends the connection.
        self.closed = asyncio.Event()
        self.close_reason: tuple[int, str] | None = None
        self._arm_idle()

    # -- Transport ------------------------------------------------------------------------

    def queue(self, data: bytes) -> None:
        if self.close_reason is not None:
            raise ConnectionError("long-poll session closed")
        text = base64.b64encode(data).decode() if frames.is_binary(data) else data.decode()
        self._frames.append(text)
        self._bytes += len(data)
        self._wake.set()

    def flush(self) -> int:
        return self._bytes

    def unread(self) -> int:
        return self._bytes

    async def drain(self) -> None:
        self._taken.clear()
        await self._taken.wait()

    async def close(self, code: int, reason: str) -> None:
        if self.close_reason is not None:
            return
        self.close_reason = (code, reason)
        if self._idle is not None:
            self._idle.cancel()
        self._wake.set()
        self.closed.set()

    def alive(self, now: float) -> bool:
        return True  # polls are the heartbeat: a session not polled is closed (``_expire``)

    @property
    def peer(self) -> str | None:
        return self._peer

    # -- polls ----------------------------------------------------------------------------

    async def poll(self, window_s: float) -> list[str] | None:
        """The frames waiting, once there are some or after ``window_s`` (maybe none);
        None when the session is closed and nothing is left to take."""
        self._poll += 1
        mine = self._poll
        if self._idle is not None:
            self._idle.cancel()
        self._polling = True
        self._wake.set()  # an older poll still waiting answers now, with nothing
        self._wake.clear()
        try:
            if not self._frames and self.close_reason is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(window_s):
                        while mine == self._poll and not self._frames:
                            if self.close_reason is not None:
                                break
                            await self._wake.wait()
                            self._wake.clear()
        finally:
            if mine == self._poll:
                self._polling = False
                self._arm_idle()
        if mine != self._poll:
            return []
        if not self._frames:
            return None if self.close_reason is not None else []
        taken, self._frames, self._bytes = self._frames, [], 0
        self._taken.set()
        return taken

    def _arm_idle(self) -> None:
        if self.close_reason is None:
            loop = asyncio.get_running_loop()
            self._idle = loop.call_later(self._idle_s, self._expire)

    def _expire(self) -> None:
        if not self._polling:
            log.info("long-poll session not polled; closing", idle_s=self._idle_s)
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().create_task(self.close(CloseCode.GOING_AWAY, "no poll"))


# -- sessions ---------------------------------------------------------------------------


class Admission(Protocol):
    """What sessions need of the gateway (:class:`~whispr.gateway.server.Gateway`)."""

    async def admit(self, peer: str, token: str | None, source: Source) -> Identity | Refusal:
        """Admit a client, or say why not."""

    async def opened(
        self, transport: LongPollTransport, identity: Identity
    ) -> tuple[Ref[ConnectionActor], asyncio.Semaphore]:
        """Start the connection's actor."""

    async def ended(self, peer: str, ref: Ref[ConnectionActor] | None) -> None:
        """The connection is over."""


@dataclass
class _Session:
    id: str
    transport: LongPollTransport
    ref: Ref[ConnectionActor]
    credits: asyncio.Semaphore
    subscription: Subscription | None = None
    #: POSTs of this session, one at a time: frames reach the actor in the client's order.
    posting: asyncio.Lock = field(default_factory=asyncio.Lock)


class _Routed(msgspec.Struct, gc=False):
    """A request for a session on another node, published on the session's topic."""

    id: str
    reply_to: str
    op: Literal["poll", "post"]
    body: bytes = b""
    ndjson: bool = False


class _Relayed(msgspec.Struct, gc=False):
    """The owner's answer to a routed request: ``accepted`` first, then the reply."""

    id: str
    stage: Literal["accepted", "answer"]
    http: int = 200
    answer: Answer | None = None


@dataclass
class _Pending:
    accepted: asyncio.Future[None]
    answer: asyncio.Future[Reply]


class LongPollSessions:
    """The node's long-poll sessions, and the routing of requests for other nodes' ones."""

    def __init__(
        self,
        gateway: Admission,
        broker: Broker,
        secret: str,
        *,
        window_s: float = POLL_WINDOW_S,
        idle_s: float = IDLE_S,
    ) -> None:
        self._gateway = gateway
        self._broker = broker
        self.tokens = SessionTokens(secret)
        self.window_s = window_s
        self.idle_s = idle_s
        self._sessions: dict[str, _Session] = {}
        self._pending: dict[str, _Pending] = {}
        self._replies: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: Set once :meth:`close` ran: no session opens after (the node drains).
        self.closing = False

    @property
    def node(self) -> str:
        return self._broker.node_id

    def __len__(self) -> int:
        return len(self._sessions)

    async def start(self) -> None:
        self._replies = await self._broker.subscribe(self._reply_topic, self._on_relayed)

    async def close(self, code: int, reason: str) -> None:
        """Close every session (the node drains) and stop routing."""
        self.closing = True
        for session in list(self._sessions.values()):
            await session.transport.close(code, reason)
        # Requests this node relays to another node's sessions end now too (410: their
        # clients reconnect elsewhere), rather than at the end of a poll window: an open
        # request would hold the HTTP server's drain.
        for pending in self._pending.values():
            if not pending.accepted.done():
                pending.accepted.set_result(None)
            if not pending.answer.done():
                pending.answer.set_result(_GONE)
        if self._replies is not None:
            self._replies.cancel()
            self._replies = None
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5.0)

    @property
    def _reply_topic(self) -> str:
        return f"longpoll-reply:{self.node}"

    # -- requests -------------------------------------------------------------------------

    async def get(self, peer: str, session_token: str | None, bearer: str | None) -> Reply:
        """A ``GET``: open a session (no session token), or poll one."""
        if session_token is None:
            return await self._open(peer, bearer)
        claims = self.tokens.read(session_token)
        if claims is None:
            return _GONE
        node, session_id = claims
        session = self._sessions.get(session_id)
        if session is not None:
            return await self._poll(session, session_token)
        if node == self.node:
            return _GONE
        return await self._route(session_id, "poll", b"", ndjson=False)

    async def post(self, session_token: str | None, body: bytes, *, ndjson: bool) -> Reply:
        """A ``POST``: the client's frames for its session."""
        claims = None if session_token is None else self.tokens.read(session_token)
        if claims is None:
            return _GONE
        node, session_id = claims
        session = self._sessions.get(session_id)
        if session is not None:
            return await self._post(session, body, ndjson=ndjson)
        if node == self.node:
            return _GONE
        return await self._route(session_id, "post", body, ndjson=ndjson)

    # -- this node's sessions -------------------------------------------------------------

    async def _open(self, peer: str, bearer: str | None) -> Reply:
        if self.closing:
            return Reply(503, Answer(500, reason="unavailable", message="draining; retry"))
        gateway = self._gateway
        admitted = await gateway.admit(peer, bearer, "longpoll")
        if not isinstance(admitted, Identity):
            # phoenix.js gives up on 403 until its next reconnect, and retries on 500.
            status = 500 if admitted.status >= 500 else 403
            error = admitted.error
            answer = Answer(status, reason=str(error.reason), message=error.message)
            return Reply(admitted.status, answer)
        transport = LongPollTransport(peer, self.idle_s)
        ref: Ref[ConnectionActor] | None = None
        try:
            ref, credits = await gateway.opened(transport, admitted)
            session = _Session(secrets.token_urlsafe(16), transport, ref, credits)
            session.subscription = await self._broker.subscribe(
                f"longpoll:{session.id}", self._on_routed
            )
        except BaseException:
            await gateway.ended(peer, ref)
            raise
        self._sessions[session.id] = session
        self._background(self._run(session, peer))
        token = self.tokens.sign(self.node, session.id)
        return Reply(200, Answer(410, token=token, messages=[]))

    async def _run(self, session: _Session, peer: str) -> None:
        """The session's reader: once its transport closes, the connection ends."""
        await session.transport.closed.wait()
        self._sessions.pop(session.id, None)
        if session.subscription is not None:
            session.subscription.cancel()
        await self._gateway.ended(peer, session.ref)

    async def _poll(self, session: _Session, token: str) -> Reply:
        messages = await session.transport.poll(self.window_s)
        if messages is None:
            return _GONE
        if not messages:
            return Reply(200, Answer(204, token=token))
        return Reply(200, Answer(200, token=token, messages=messages))

    async def _post(self, session: _Session, body: bytes, *, ndjson: bool) -> Reply:
        lines = _frames_of(body, ndjson=ndjson)
        if lines is None:
            return Reply(400, Answer(400, reason="invalid", message="invalid long-poll batch"))
        async with session.posting:
            for data in lines:
                if session.transport.close_reason is not None:
                    return _GONE
                try:
                    async with asyncio.timeout(self.window_s):
                        await session.credits.acquire()
                except TimeoutError:
                    return Reply(200, Answer(408))  # phoenix.js retries on a new session
                try:
                    session.ref.tell(Inbound(data))
                except ActorDeadError:
                    session.credits.release()
                    return _GONE
        return _OK

    # -- routing between nodes ------------------------------------------------------------

    async def _route(
        self, session_id: str, op: Literal["poll", "post"], body: bytes, *, ndjson: bool
    ) -> Reply:
        loop = asyncio.get_running_loop()
        request_id = secrets.token_hex(8)
        pending = _Pending(loop.create_future(), loop.create_future())
        self._pending[request_id] = pending
        routed = _Routed(request_id, self._reply_topic, op, body, ndjson)
        try:
            self._broker.publish(f"longpoll:{session_id}", msgspec.json.encode(routed))
            try:
                await asyncio.wait_for(asyncio.shield(pending.accepted), ROUTE_TIMEOUT_S)
            except TimeoutError:
                return _GONE  # no node has it
            try:
                return await asyncio.wait_for(pending.answer, self.window_s + ROUTE_TIMEOUT_S)
            except TimeoutError:
                return _GONE
        finally:
            del self._pending[request_id]

    def _on_routed(self, topic: str, data: bytes) -> None:
        """A request for one of this node's sessions, from another node."""
        session = self._sessions.get(topic.partition(":")[2])
        try:
            routed = msgspec.json.decode(data, type=_Routed)
        except msgspec.DecodeError:
            log.warning("routed long-poll request not understood", size=len(data))
            return
        if session is None:
            return
        self._relay(routed, _Relayed(routed.id, "accepted"))
        self._background(self._serve(session, routed))

    async def _serve(self, session: _Session, routed: _Routed) -> None:
        if routed.op == "poll":
            token = self.tokens.sign(self.node, session.id)
            reply = await self._poll(session, token)
        else:
            reply = await self._post(session, routed.body, ndjson=routed.ndjson)
        self._relay(routed, _Relayed(routed.id, "answer", reply.http, reply.answer))

    def _relay(self, routed: _Routed, relayed: _Relayed) -> None:
        self._broker.publish(routed.reply_to, msgspec.json.encode(relayed))

    def _on_relayed(self, _topic: str, data: bytes) -> None:
        try:
            relayed = msgspec.json.decode(data, type=_Relayed)
        except msgspec.DecodeError:
            log.warning("long-poll relay not understood", size=len(data))
            return
        pending = self._pending.get(relayed.id)
        if pending is None:
            return
        if not pending.accepted.done():
            pending.accepted.set_result(None)
        if relayed.stage == "answer" and relayed.answer is not None and not pending.answer.done():
            pending.answer.set_result(Reply(relayed.http, relayed.answer))

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _frames_of(body: bytes, *, ndjson: bool) -> list[str | bytes] | None:
    """A POST body's frames (text, or bytes for a base64 line); None when it is malformed.

    ``application/x-ndjson`` carries one frame per line, as phoenix.js batches them; any
    other body is one text frame. Each frame then goes through the protocol's checks.
    """
    if len(body) > MAX_BODY_BYTES:
        return None
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return None
    if not ndjson:
        return [text]
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line]
    if len(lines) > MAX_BATCH:
        return None
    out: list[str | bytes] = []
    for line in lines:
        if line.startswith("["):
            out.append(line)
        else:
            try:
                out.append(base64.b64decode(line, validate=True))
            except (binascii.Error, ValueError):
                return None
    return out
