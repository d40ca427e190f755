"""The HTTP API's server: uvicorn serving the Litestar app, as a service of the node's tree.

:class:`HttpService` is the node's ``http`` service, started after the gateway (so that a
restart of anything it uses restarts it too) and stopped before it. It listens on a port
of its own (``WHISPR_HTTP_PORT``, 4080; 0 disables it): the WebSocket hot path stays on the
gateway's ``websockets`` server, untouched by the API's framework and middleware, and a
browser page served from one origin opens a WebSocket to another without ceremony
(WebSockets are not subject to CORS; ``WHISPR_ALLOWED_ORIGINS`` still applies).

uvicorn runs on the node's event loop (``uvicorn.Server.serve``), on a socket the service
binds itself (a port taken is the node's start failure, named like the others). It must not
take the process's signals: the node's root handles SIGTERM and SIGINT and stops its
services in order, so :class:`_Server` installs no handler (uvicorn's ``capture_signals``
would otherwise replace the node's for as long as it serves). Stopping the service drains
like the gateway: no new connection is accepted, requests in progress get up to the
node's drain budget to finish, then what is left is cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import structlog
import uvicorn

from actors.broker import Broker
from actors.messaging import Messaging
from supervisors import AsyncioActor
from whispr.accounts import AccountStore
from whispr.config import Settings
from whispr.gateway.context import GatewayContext
from whispr.gateway.server import Gateway
from whispr.grpc.auth import CallerAuth, parse_tokens
from whispr.http.app import build_app
from whispr.http.context import HttpContext
from whispr.protocol import CloseCode
from whispr.server_api import ServerApi
from whispr.slot import Slot
from whispr.user_presence import UserPresence

__all__ = ["HttpServer", "HttpService"]

log = structlog.get_logger("whispr.http")


class _Server(uvicorn.Server):
    """uvicorn's server, leaving the process's signals to the node."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    """A listening socket on ``host:port`` (0: any free port); ``OSError`` if it cannot be."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=backlog)


class HttpServer:
    """uvicorn serving the API on one socket; started and stopped by its service."""

    def __init__(self, ctx: HttpContext) -> None:
        self.ctx = ctx
        #: The application served (its routes and OpenAPI document).
        self.app = build_app(ctx)
        self._socket: socket.socket | None = None
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful when started on port 0)."""
        assert self._socket is not None
        return int(self._socket.getsockname()[1])

    async def start(self, host: str, port: int) -> None:
        settings = self.ctx.settings
        self._socket = _listen(host, port, settings.listen_backlog)
        config = uvicorn.Config(
            self.app,
            lifespan="off",  # the node's tree starts and stops what the app uses
            log_config=None,  # the node configures logging (structlog)
            access_log=False,
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=max(1, int(settings.shutdown_deadline_s / 2)),
        )
        server = _Server(config)
        self._server = server
        self._task = asyncio.get_running_loop().create_task(
            server.serve(sockets=[self._socket]), name="http-server"
        )
        while not server.started:
            if self._task.done():
                self._task.result()  # its failure, raised here
                msg = "the HTTP server stopped while starting"
                raise RuntimeError(msg)
            await asyncio.sleep(0.01)

    async def drain(self, timeout: float) -> None:
        """Stop accepting, let requests in progress finish within ``timeout``, then stop."""
        server, task = self._server, self._task
        if server is None or task is None:
            return
        if self.ctx.sockets is not None:
            # Polls end now (410: their clients reconnect elsewhere) rather than at the
            # end of their window, which would hold the drain.
            await self.ctx.sockets.longpoll.close(CloseCode.SERVICE_RESTART, "service restart")
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            server.force_exit = True
            with contextlib.suppress(Exception):
                await task
        finally:
            if self._socket is not None:
                self._socket.close()
        log.info("http drained")


class HttpService(AsyncioActor):
    """The node's ``http`` service: builds the API over the services started before it.

    It checks tokens, revocations and rate limits with the gateway's own verifier, revocation
    list and limits (``gateway``: its context), so that a user has one budget per limit
    whichever transport spends it, also on the in-process limiter of an embedded node. It
    serves the web page and Phoenix's long-poll transport over the running gateway
    (``sockets``: its port, its long-poll sessions). The running :class:`HttpServer` is
    published in ``out`` (for its bound port); it stays empty when the API is disabled
    (``WHISPR_HTTP_PORT=0``).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        messaging: Messaging,
        broker: Broker,
        gateway: GatewayContext,
        accounts: AccountStore | None = None,
        user_presence: UserPresence | None = None,
        sockets: Gateway | None = None,
        out: Slot[HttpServer],
    ) -> None:
        super().__init__()
        self.settings = settings
        self.messaging = messaging
        self.broker = broker
        self.gateway = gateway
        self.accounts = accounts
        self.user_presence = user_presence
        self.sockets = sockets
        self.out = out
        self.server: HttpServer | None = None

    async def on_start(self) -> None:
        settings, gateway = self.settings, self.gateway
        if not settings.http_port:
            log.info("http disabled", setting="WHISPR_HTTP_PORT=0")
            return
        server_api = None
        if self.accounts is not None and self.user_presence is not None:
            server_api = ServerApi(self.messaging, self.broker, self.accounts, self.user_presence)
        ctx = HttpContext(
            settings=settings,
            messaging=self.messaging,
            verifier=gateway.verifier,
            sessions=gateway.sessions,
            limits=gateway.limits,
            audit=gateway.audit,
            callers=CallerAuth(parse_tokens(settings.grpc_tokens)),
            server_api=server_api,
            is_user_active=gateway.is_user_active,
            sockets=self.sockets,
            schedules=gateway.schedules,
        )
        self.server = HttpServer(ctx)
        await self.server.start(settings.host, settings.http_port)
        self.out.set(self.server)
        log.info("http listening", host=settings.host, port=self.server.port)

    async def on_stop(self) -> None:
        if self.server is not None:
            self.out.clear()
            await self.server.drain(timeout=self.settings.shutdown_deadline_s / 2)
            self.server = None
