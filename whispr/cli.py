"""The ``whispr`` command: run a node, and the tools around it."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, BinaryIO

import structlog

from whispr.audit.record import AuditKind
from whispr.config import ConfigError, Settings, load_settings, log_format_from_env
from whispr.telemetry import configure_logging, configure_metrics

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="whispr", description=__doc__)
    parser.add_argument("--config", help="TOML configuration file (else $WHISPR_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a node until SIGTERM or Ctrl-C")
    serve.add_argument("--port", type=int, help="WebSocket/HTTP port (overrides WHISPR_PORT)")
    commands.add_parser("migrate", help="apply the store's migrations and exit")
    token = commands.add_parser("token", help="print a token signed with the configured secret")
    token.add_argument("user", help="the user id (the token's 'sub')")
    token.add_argument("--device", help="the device id (the token's 'device')")
    token.add_argument("--ttl", type=float, default=3600.0, help="lifetime in seconds")
    audit = commands.add_parser(
        "audit",
        help="print audit records (security events) from the store, one JSON object per line",
    )
    audit.add_argument("--user", help="only this user's records")
    audit.add_argument(
        "--since",
        default="24h",
        help="from this time: ISO 8601 (UTC unless a zone is given) or a duration back "
        "from now such as 90m, 24h, 7d (default: 24h)",
    )
    audit.add_argument("--until", help="up to this time, same forms (default: now)")
    audit.add_argument(
        "--kind",
        action="append",
        choices=[k.value for k in AuditKind],
        help="only records of this kind (repeat for several)",
    )
    audit.add_argument("--limit", type=int, help="print at most this many records")
    export = commands.add_parser(
        "export",
        help="write history from the store as JSON Lines (one message per line), "
        "with a progress bar",
    )
    export.add_argument(
        "--user", help="what this user sees: their conversations (or the one named)"
    )
    export.add_argument("--conversation", help="only this conversation (alone: all of it)")
    export.add_argument(
        "--output", "-o", default="-", help="the file to write (default: standard output)"
    )
    export.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show the progress bar on stderr (default: when stderr is a terminal)",
    )
    commands.add_parser("version", help="print the version")
    commands.add_parser(
        "bench",
        help="load generator: real WebSocket clients against nodes (whispr bench --help)",
        add_help=False,
    )
    commands.add_parser(
        "soak",
        help="soak run: steady traffic with reconnect churn; do resources stay flat? "
        "(whispr soak --help)",
        add_help=False,
    )
    commands.add_parser(
        "chaos",
        help="fault run: nodes, Redis and PostgreSQL fail under traffic; is anything lost? "
        "(whispr chaos --help)",
        add_help=False,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``whispr`` console script."""
    args, rest = _parser().parse_known_args(argv)
    if args.command == "bench":
        from whispr.bench import require_bench_extra

        require_bench_extra()
        from whispr.bench.gateway import main as bench_main

        return bench_main(rest)
    if args.command == "soak":
        from whispr.bench import require_bench_extra

        require_bench_extra("whispr soak")
        from whispr.bench.soak import main as soak_main

        return soak_main(rest)
    if args.command == "chaos":
        from whispr.bench import require_bench_extra

        require_bench_extra("whispr chaos")
        from whispr.bench.chaos import main as chaos_main

        return chaos_main(rest)
    if rest:
        _parser().error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "version":
        from whispr import __version__

        print(__version__)
        return 0
    try:
        settings: Settings = load_settings(args.config)
        if getattr(args, "port", None) is not None:
            settings = settings.with_overrides(port=args.port)
    except ConfigError as exc:
        _configuration_error(exc, log_format_from_env(os.environ))
        return 2
    configure_logging(settings)
    if args.command == "token":
        return _token(settings, args.user, args.device, args.ttl)
    if args.command == "migrate":
        return _run_loop(_migrate(settings))
    if args.command == "audit":
        return _run_loop(_audit(settings, args))
    if args.command == "export":
        return _export(settings, args)
    if args.command == "serve":
        # Before the node's modules are imported: their instruments are made at import, and
        # the provider's resource (the node's name) is fixed when it is created.
        configure_metrics(settings)
        from whispr.tracing import TracingError, check_exporters

        try:
            settings.check_exposure()
            check_exporters()
        except (ConfigError, TracingError) as exc:
            structlog.get_logger("whispr.config").error(f"configuration error: {exc}")
            return 2
        from whispr.node import run_node

        return _run_loop(run_node(settings))
    return 2  # pragma: no cover - argparse rejects unknown commands


def _configuration_error(exc: ConfigError, log_format: str) -> None:
    """One line on stderr, before logging is configured: a JSON object in JSON log mode, so
    that a collector parses even the last line of a node that could not start."""
    message = f"configuration error: {exc}"
    if log_format == "json":
        record = {
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "level": "error",
            "logger": "whispr.config",
            "event": message,
        }
        print(json.dumps(record), file=sys.stderr)
    else:
        print(f"whispr: {message}", file=sys.stderr)


def _token(settings: Settings, user: str, device: str | None, ttl: float) -> int:
    from whispr.auth import issue_token

    if settings.jwt_algorithm not in ("HS256", "HS384", "HS512"):
        print(
            f"whispr: tokens for {settings.jwt_algorithm} are issued by the auth service",
            file=sys.stderr,
        )
        return 2
    print(
        issue_token(
            user,
            secret=settings.jwt_secret,
            device_id=device,
            ttl_s=ttl,
            algorithm=settings.jwt_algorithm,
        )
    )
    return 0


async def _migrate(settings: Settings) -> int:
    from whispr.store.factory import open_store

    store = open_store(settings.database_url, settings.sqlite_path)
    await store.open()
    try:
        await store.migrate()
    finally:
        await store.close()
    print("migrations applied")
    return 0


async def _audit(settings: Settings, args: argparse.Namespace) -> int:
    import time

    from actors.errors import WhisprError
    from whispr.audit.query import pages, parse_time, print_records
    from whispr.store.factory import open_store

    now = time.time()
    try:
        since = parse_time(args.since, now)
        until = now if args.until is None else parse_time(args.until, now)
    except ValueError as exc:
        print(f"whispr audit: {exc}", file=sys.stderr)
        return 2
    store = open_store(settings.database_url, settings.sqlite_path)
    try:
        await store.open()
        await print_records(
            pages(
                store,
                since=since,
                until=until,
                user_id=args.user,
                kinds=[AuditKind(k) for k in args.kind or ()],
                limit=args.limit,
            )
        )
    except WhisprError as exc:  # unreachable, or not migrated yet: one line, not a trace
        print(f"whispr audit: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    return 0


def _export(settings: Settings, args: argparse.Namespace) -> int:
    if not args.user and not args.conversation:
        print("whispr export: name --user, --conversation or both", file=sys.stderr)
        return 2
    if args.output == "-":
        return _run_loop(_export_to(settings, args, sys.stdout.buffer))
    try:
        out = open(args.output, "wb")  # noqa: SIM115 - closed below, after the loop
    except OSError as exc:
        print(f"whispr export: cannot write {args.output}: {exc}", file=sys.stderr)
        return 1
    with out:
        return _run_loop(_export_to(settings, args, out))


async def _export_to(settings: Settings, args: argparse.Namespace, out: BinaryIO) -> int:
    from actors.errors import WhisprError
    from whispr.export import export_history
    from whispr.store.factory import open_store

    store = open_store(settings.database_url, settings.sqlite_path)
    try:
        await store.open()
        written = await export_history(
            store,
            out,
            user_id=args.user,
            conversation_id=args.conversation,
            progress=args.progress,
        )
    except WhisprError as exc:  # unknown, not a member, unreachable: one line, not a trace
        print(f"whispr export: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    print(f"whispr export: {written} messages", file=sys.stderr)
    return 0


def _run_loop(main_coroutine: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop where available: it is markedly faster for many sockets."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return int(asyncio.run(main_coroutine))
    return int(uvloop.run(main_coroutine))


if __name__ == "__main__":
    sys.exit(main())
