"""``python -m whispr.bench [SUITE ...|all] [--quick] [--out DIR]``: run the benchmarks.

Every registered suite runs by default (``make bench``), in registration
order. A suite is a function ``run_suite(out, quick) -> dict`` that measures,
writes ``<suite>.json``/``.md``/``.png`` under ``out`` and returns its figures.
Adding one is one line in :data:`SUITES` (a ``module:function`` path, imported
only when the suite runs, so that one suite's dependencies never stop another).
A suite that fails is reported and the others still run; the exit status is
then 1.
"""

from __future__ import annotations

import argparse
import importlib
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, cast

from whispr.bench import require_bench_extra

__all__ = ["SUITES", "Suite", "load", "main"]


class Suite(Protocol):
    """What a suite is: measure, write results under ``out``, return the figures."""

    def __call__(self, out: Path, quick: bool = False) -> Mapping[str, Any]: ...


#: Every suite, in the order an unqualified run goes through them: name -> "module:function".
SUITES: dict[str, str] = {
    "runtime": "whispr.bench.runtime:run_suite",
    "store": "whispr.bench.store:run_suite",
    "gateway": "whispr.bench.gateway:run_suite",
    "grpc": "whispr.bench.grpc:run_suite",
    "tracing": "whispr.bench.tracing:run_suite",
    "e2e": "whispr.bench.e2e:run_suite",
}


def load(name: str) -> Suite:
    """Import the suite registered as ``name``."""
    module_name, _, function = SUITES[name].partition(":")
    module = importlib.import_module(module_name)
    return cast(Suite, getattr(module, function))


def _chosen(parser: argparse.ArgumentParser, names: list[str]) -> list[str]:
    if not names or "all" in names:
        return list(SUITES)
    unknown = [name for name in names if name not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    return list(dict.fromkeys(names))  # once each, in the order given


def main(argv: list[str] | None = None) -> int:
    """Run the chosen suites; return the process's exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m whispr.bench", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument(
        "suites",
        nargs="*",
        metavar="SUITE",
        help=f"any of: {', '.join(SUITES)}, or all (the default)",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="where results go")
    args = parser.parse_args(argv)
    require_bench_extra()
    failed: list[str] = []
    for name in _chosen(parser, args.suites):
        began = time.perf_counter()
        print(f"== {name}{' (quick)' if args.quick else ''} ==", flush=True)
        try:
            load(name)(args.out, args.quick)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            status = "FAILED"
        else:
            status = "done"
        print(f"== {name}: {status} in {time.perf_counter() - began:.1f} s ==", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}; results of the others in {args.out}/", flush=True)
        return 1
    print(f"results in {args.out}/", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
