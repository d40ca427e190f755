"""``python -m whispr.bench [SUITE ...] [--quick] [--out DIR]``: run the benchmarks."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from whispr.bench import runtime, store

Suite = Callable[[Path, bool], dict[str, Any]]

#: Every suite, in the order ``make bench`` runs them. A new suite is one line here.
SUITES: dict[str, Suite] = {
    "runtime": runtime.run_suite,
    "store": store.run_suite,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m whispr.bench", description=__doc__)
    parser.add_argument(
        "suites", nargs="*", metavar="SUITE", help=f"any of {', '.join(SUITES)} (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)
    unknown = [name for name in args.suites if name not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    chosen = args.suites or list(SUITES)
    for name in chosen:
        began = time.perf_counter()
        print(f"== {name} ==", flush=True)
        SUITES[name](args.out, args.quick)
        print(f"== {name}: done in {time.perf_counter() - began:.1f} s ==", flush=True)
    print(f"results in {args.out}/", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
