"""Why a node could not start, in one line, and nothing else on the way out.

A node that cannot start (its port is taken, PostgreSQL is unreachable or refuses it) used to
end in a supervisor's crash reports and a traceback of a hundred lines, and in JSON log mode
the traceback broke "one JSON object per line". The operator needs the cause and what to
fix: :func:`describe_start_failure` turns the exception a failed start raised into one
sentence naming the service, the setting and the cause; :class:`HeldCrashReports` keeps the
supervisors' crash reports back while the tree starts, so that a known cause is the only
error printed. An unknown cause is a bug: it is logged with its exception (one JSON object
in JSON mode), and the held reports with it.
"""

from __future__ import annotations

import errno
import logging
import socket
import sqlite3
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

import asyncpg

from actors.errors import Reason, WhisprError
from supervisors import StartChildError
from whispr.config import Settings

__all__ = ["HeldCrashReports", "StartFailure", "describe_start_failure", "ensure_bindable"]

#: The services that listen, with the setting of their port.
_LISTENERS = {
    "gateway": ("port", "WHISPR_PORT"),
    "grpc": ("grpc_port", "WHISPR_GRPC_PORT"),
    "http": ("http_port", "WHISPR_HTTP_PORT"),
}


@dataclass(frozen=True)
class StartFailure:
    """Why the node did not start: ``message`` for the operator; ``known`` when the cause is
    one an operator fixes (a setting, a dependency), not a bug."""

    message: str
    known: bool
    cause: BaseException


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes, outermost first."""
    chain = [exc]
    while len(chain) < 32:
        nxt = chain[-1].__cause__ or (
            None if chain[-1].__suppress_context__ else chain[-1].__context__
        )
        if nxt is None or nxt in chain:
            break
        chain.append(nxt)
    return chain


def _postgres_where(url: str | None) -> str:
    """``host:port/database`` of a DSN: never its user or password."""
    parts = urlsplit(url or "")
    host = parts.hostname or "localhost"
    port = parts.port or 5432
    return f"{host}:{port}{parts.path or '/'}"


def _words(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _listener(child: str, root: BaseException, settings: Settings) -> StartFailure | None:
    field, variable = _LISTENERS[child]
    port = getattr(settings, field)
    where = f"{settings.host}:{port} ({variable}, WHISPR_HOST)"
    if isinstance(root, OSError) and root.errno is not None:
        if root.errno == errno.EADDRINUSE:
            why = "the address is already in use"
        elif root.errno == errno.EADDRNOTAVAIL:
            why = "no interface of this machine has that address"
        else:
            why = root.strerror or _words(root)
        return StartFailure(f"the {child} cannot listen on {where}: {why}", True, root)
    if isinstance(root, RuntimeError) and "Failed to bind" in str(root):
        # grpc says no more than that: taken, or not an address of this machine.
        why = "the address is in use or not available"
        return StartFailure(f"the {child} cannot listen on {where}: {why}", True, root)
    return None


def _store(root: BaseException, chain: list[BaseException], settings: Settings) -> StartFailure:
    if settings.database_url is None:
        where = f"{settings.sqlite_path!r} (WHISPR_SQLITE_PATH)"
        if isinstance(root, sqlite3.Error | OSError):
            return StartFailure(f"cannot open the SQLite store {where}: {_words(root)}", True, root)
        return StartFailure(f"the SQLite store {where} failed: {_words(root)}", False, root)
    where = f"PostgreSQL at {_postgres_where(settings.database_url)} (WHISPR_DATABASE_URL)"
    if isinstance(root, asyncpg.InvalidAuthorizationSpecificationError):
        return StartFailure(f"{where} refused the credentials: {_words(root)}", True, root)
    if isinstance(root, asyncpg.InvalidCatalogNameError):
        return StartFailure(f"{where}: {_words(root)}", True, root)
    if isinstance(root, asyncpg.PostgresError):
        return StartFailure(f"{where} refused the node: {_words(root)}", True, root)
    unreachable = any(
        isinstance(exc, OSError | TimeoutError)
        or (isinstance(exc, WhisprError) and exc.reason is Reason.UNAVAILABLE)
        for exc in chain
    )
    if unreachable:
        return StartFailure(f"{where} is unreachable: {_words(root)}", True, root)
    return StartFailure(f"the store failed to start: {_words(root)}", False, root)


def describe_start_failure(exc: BaseException, settings: Settings) -> StartFailure:
    """The one-line cause of a failed start (``exc`` is what starting the tree raised)."""
    chain = _chain(exc)
    root = chain[-1]
    children = [e.child_id for e in chain if isinstance(e, StartChildError)]
    child = children[-1] if children else None
    if isinstance(child, str) and child in _LISTENERS:
        failure = _listener(child, root, settings)
        if failure is not None:
            return failure
    if child == "store":
        return _store(root, chain, settings)
    what = f"the {child} service" if isinstance(child, str) else "the node"
    return StartFailure(
        f"{what} failed to start: {type(root).__name__}: {_words(root)}", False, root
    )


class HeldCrashReports(logging.Filter):
    """Holds back the supervisors' error reports while the tree starts.

    Use as a context manager around the start; call :meth:`release` once the tree is up
    (the reports held, if any, are logged then, late but complete) or :meth:`discard` when a
    known cause will be reported instead.
    """

    def __init__(self) -> None:
        super().__init__()
        self._logger = logging.getLogger("supervisors")
        self.held: list[logging.LogRecord] = []
        self._active = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            self.held.append(record)
            return False
        return True

    def __enter__(self) -> HeldCrashReports:
        self._logger.addFilter(self)
        self._active = True
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._active:
            self._logger.removeFilter(self)
            self._active = False

    def release(self) -> None:
        """Stop holding; log what was held."""
        self._stop()
        held, self.held = self.held, []
        for record in held:
            self._logger.handle(record)

    def discard(self) -> None:
        """Stop holding; forget what was held."""
        self._stop()
        self.held = []


def ensure_bindable(host: str, port: int) -> None:
    """Raise the ``OSError`` a server would meet binding ``host:port`` (0: any port is fine).

    For a server whose library reports a failed bind only in its own log lines and a vague
    exception (grpc's core): the node names the cause itself, in one line, before that.

    Raises:
        OSError: the address is in use (``EADDRINUSE``), not this machine's, or refused.
    """
    if port == 0:
        return
    for family, kind, proto, _name, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        with socket.socket(family, kind, proto) as probe:
            # As servers do: a port held only by connections in TIME_WAIT is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
