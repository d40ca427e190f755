"""The chaos run's own PostgreSQL and Redis, in a temporary directory, on free loopback ports.

Its own because the run stops them on purpose: the shared services other work relies on
(the suite's, a developer's) must never be the ones taken down. Each can be stopped and
started again on the same port and data directory, which is the fault: clients and nodes
see the service vanish and come back where it was.

PostgreSQL refuses to run as root, so when this process is root its binaries run as the
``postgres`` OS user (``runuser``), and the data directory is handed to that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from whispr.bench.nodes import free_port

__all__ = ["PrivatePostgres", "PrivateRedis", "services_missing"]


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def services_missing() -> list[str]:
    """The binaries this run needs and cannot find."""
    needed = [("initdb", _pg_bin("initdb")), ("pg_ctl", _pg_bin("pg_ctl"))]
    needed.append(("redis-server", shutil.which("redis-server")))
    return [name for name, path in needed if path is None]


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


class PrivatePostgres:
    """A PostgreSQL cluster under ``workdir``; :meth:`stop` is an immediate (crash-like) stop."""

    def __init__(self, workdir: Path) -> None:
        self.data = workdir / "pgdata"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres = os.geteuid() == 0

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        subprocess.run(
            [*prefix, *argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def init(self) -> None:
        """Create the cluster (trust authentication on loopback only) and start it."""
        self.data.mkdir(parents=True)
        if self._as_postgres:
            shutil.chown(self.data.parent, "postgres")
            shutil.chown(self.data, "postgres")
        initdb = _pg_bin("initdb")
        assert initdb is not None
        self._run(initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()

    def start(self) -> None:
        pg_ctl = _pg_bin("pg_ctl")
        assert pg_ctl is not None
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} "
            "-c max_connections=200 -c fsync=off"
        )
        log = str(self.data / "server.log")
        self._run(pg_ctl, "-D", str(self.data), "-o", options, "-l", log, "-w", "start")
        _wait_port(self.port, 30)

    def stop(self) -> None:
        pg_ctl = _pg_bin("pg_ctl")
        assert pg_ctl is not None
        self._run(pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def close(self) -> None:
        """Stop it if it runs (the end of the run)."""
        pg_ctl = _pg_bin("pg_ctl")
        if pg_ctl is not None and (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run(pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop")


class PrivateRedis:
    """A redis-server under ``workdir`` without persistence: a restart comes back empty."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.workdir)]
        self._process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, 10)

    def stop(self) -> None:
        """SIGKILL: the broker vanishes, as when its machine dies."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    close = stop
