"""The ``whispr`` command: run a node, and the tools around it."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from whispr.config import ConfigError, Settings, load_settings
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
        print(f"whispr: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    if args.command == "token":
        return _token(settings, args.user, args.device, args.ttl)
    if args.command == "migrate":
        return _run_loop(_migrate(settings))
    if args.command == "serve":
        # Before the node's modules are imported: their instruments are made at import, and
        # the provider's resource (the node's name) is fixed when it is created.
        configure_metrics(settings)
        from whispr.tracing import TracingError, check_exporters

        try:
            check_exporters()
        except TracingError as exc:
            print(f"whispr: configuration error: {exc}", file=sys.stderr)
            return 2
        from whispr.node import run_node

        return _run_loop(run_node(settings))
    return 2  # pragma: no cover - argparse rejects unknown commands


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


def _run_loop(main_coroutine: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop where available: it is markedly faster for many sockets."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return int(asyncio.run(main_coroutine))
    return int(uvloop.run(main_coroutine))


if __name__ == "__main__":
    sys.exit(main())
