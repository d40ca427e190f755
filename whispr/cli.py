"""The ``whispr`` command: run a node, and the tools around it."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from whispr.config import ConfigError, Settings, load_settings
from whispr.telemetry import configure_logging

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="whispr", description=__doc__)
    parser.add_argument("--config", help="TOML configuration file (else $WHISPR_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a node until SIGTERM or Ctrl-C")
    serve.add_argument("--port", type=int, help="WebSocket/HTTP port (overrides WHISPR_PORT)")
    commands.add_parser("version", help="print the version")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``whispr`` console script."""
    args = _parser().parse_args(argv)
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
    if args.command == "serve":
        from whispr.node import run_node

        return _run_loop(run_node(settings))
    return 2  # pragma: no cover - argparse rejects unknown commands


def _run_loop(main_coroutine: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop where available: it is markedly faster for many sockets."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return int(asyncio.run(main_coroutine))
    return int(uvloop.run(main_coroutine))


if __name__ == "__main__":
    sys.exit(main())
