"""``whispr serve`` processes that cannot (or must not) start: one line naming the cause, a
non-zero exit, and in JSON log mode every line a JSON object, the last one included."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from whispr.bench.nodes import free_port, start_node_process

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Exit:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    def json_lines(self) -> list[dict[str, object]]:
        """Every stderr line as JSON (failing the test on a line that is not)."""
        return [json.loads(line) for line in self.lines]


def serve(env: dict[str, str], tmp_path: Path, *, timeout: float = 60) -> Exit:
    """Run ``whispr serve`` until it exits on its own (a node that starts fails the test)."""
    full = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("WHISPR_") or key == "WHISPR_REQUIRE_SERVICES"
    }
    full |= {
        "WHISPR_SQLITE_PATH": str(tmp_path / "node.db"),
        "WHISPR_PORT": str(free_port()),
        "WHISPR_GRPC_PORT": str(free_port()),
        "WHISPR_HTTP_PORT": str(free_port()),
        "WHISPR_LOG_FORMAT": "json",
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-m", "whispr.cli", "serve"],
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Exit(done.returncode, done.stdout, done.stderr)


def assert_one_error_line(result: Exit, *, code: int, says: list[str]) -> None:
    assert result.code == code, result.stderr
    assert "Traceback" not in result.stderr
    records = result.json_lines()
    errors = [r for r in records if r["level"] == "error"]
    assert errors == [records[-1]], result.stderr  # one error, and it is the last line
    for words in says:
        assert words in str(records[-1]["event"]), records[-1]


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_the_gateway_port_in_use(tmp_path: Path, listening: int) -> None:
    result = serve({"WHISPR_PORT": str(listening)}, tmp_path)
    assert_one_error_line(result, code=1, says=["WHISPR_PORT", "already in use", str(listening)])


def test_the_grpc_port_in_use(tmp_path: Path, listening: int) -> None:
    result = serve({"WHISPR_GRPC_PORT": str(listening)}, tmp_path)
    assert_one_error_line(result, code=1, says=["WHISPR_GRPC_PORT", "already in use"])


def test_the_http_port_in_use(tmp_path: Path, listening: int) -> None:
    result = serve({"WHISPR_HTTP_PORT": str(listening)}, tmp_path)
    assert_one_error_line(result, code=1, says=["WHISPR_HTTP_PORT", "already in use"])


def test_the_database_unreachable(tmp_path: Path) -> None:
    port = free_port()
    result = serve({"WHISPR_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/x"}, tmp_path)
    assert_one_error_line(
        result, code=1, says=["PostgreSQL at 127.0.0.1", "WHISPR_DATABASE_URL", "unreachable"]
    )


def test_the_database_refusing_the_credentials(tmp_path: Path, postgres_url: str) -> None:
    url = re.sub(r"//[^@/]*@", "//no_such_role:secret-password@", postgres_url, count=1)
    result = serve({"WHISPR_DATABASE_URL": url}, tmp_path)
    assert_one_error_line(result, code=1, says=["refused the credentials", "no_such_role"])
    assert "secret-password" not in result.stderr


def test_a_database_that_does_not_exist(tmp_path: Path, postgres_url: str) -> None:
    url = postgres_url.rsplit("/", 1)[0] + "/no_such_database_here"
    result = serve({"WHISPR_DATABASE_URL": url}, tmp_path)
    assert_one_error_line(result, code=1, says=["no_such_database_here", "does not exist"])


def test_an_sqlite_file_that_cannot_be_opened(tmp_path: Path) -> None:
    result = serve({"WHISPR_SQLITE_PATH": str(tmp_path)}, tmp_path)  # a directory
    assert_one_error_line(result, code=1, says=["SQLite", "WHISPR_SQLITE_PATH"])


def test_a_configuration_error_in_json_mode_is_one_json_line(tmp_path: Path) -> None:
    result = serve({"WHISPR_PORT": "http"}, tmp_path)
    assert_one_error_line(result, code=2, says=["WHISPR_PORT", "expected an integer"])
    assert len(result.lines) == 1


def test_in_console_mode_the_cause_is_the_last_line_and_no_traceback(
    tmp_path: Path, listening: int
) -> None:
    result = serve({"WHISPR_PORT": str(listening), "WHISPR_LOG_FORMAT": "console"}, tmp_path)
    assert result.code == 1
    assert "Traceback" not in result.stderr
    assert "already in use" in result.lines[-1]
    assert [line for line in result.lines if "error" in line.split("]")[0]] == [result.lines[-1]]


def test_the_dev_secret_on_all_interfaces_is_refused(tmp_path: Path) -> None:
    result = serve({"WHISPR_HOST": "0.0.0.0"}, tmp_path)
    assert_one_error_line(
        result, code=2, says=["WHISPR_JWT_SECRET", "0.0.0.0", "WHISPR_ALLOW_DEV_SECRET"]
    )


def _dockerfile_env() -> dict[str, str]:
    """The ``WHISPR_*`` variables the image's runtime stage sets."""
    runtime = (ROOT / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]
    return dict(re.findall(r"\b(WHISPR_[A-Z_]+)=(\S+)", runtime))


def test_the_image_environment_does_not_start_with_the_dev_secret(tmp_path: Path) -> None:
    env = _dockerfile_env()
    assert env["WHISPR_HOST"] == "0.0.0.0"
    env["WHISPR_SQLITE_PATH"] = str(tmp_path / "image.db")
    result = serve(env, tmp_path)
    assert_one_error_line(result, code=2, says=["WHISPR_JWT_SECRET"])


async def test_the_explicit_opt_in_starts_on_all_interfaces(tmp_path: Path) -> None:
    env = {
        "WHISPR_HOST": "0.0.0.0",
        "WHISPR_ALLOW_DEV_SECRET": "1",
        "WHISPR_SQLITE_PATH": str(tmp_path / "node.db"),
    }
    node = await start_node_process("opted-in", env, timeout=60)
    assert await node.stop() == 0
