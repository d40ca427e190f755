"""Benchmarks: ``python -m whispr.bench`` (``make bench``) runs every registered suite.

Each suite measures one part of the system and writes a JSON file of figures,
a Markdown summary and a plot under ``bench-results/``. Performance is
reported here, never asserted in tests: a shared 2-core machine makes timed
assertions flaky, while a report a person reads tells the truth.
"""

from __future__ import annotations

import importlib.util

__all__ = ["BENCH_EXTRA_MODULES", "MissingBenchExtra", "require_bench_extra"]

#: The modules of the ``bench`` extra (pyproject.toml), which a runtime install leaves out.
BENCH_EXTRA_MODULES = ("picows", "tqdm", "psutil", "matplotlib")


class MissingBenchExtra(SystemExit):
    """The benchmarks need the ``bench`` extra; its message says how to install it."""


def require_bench_extra(command: str = "whispr bench") -> None:
    """Stop with one clear line when the ``bench`` extra is not installed.

    Checked before any benchmark module is imported, so that a node installed for production
    (``make run``, the Docker image) answers ``whispr bench`` with what to install rather than
    a ``ModuleNotFoundError`` from deep inside an import.
    """
    missing = [name for name in BENCH_EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingBenchExtra(
            f"{command} needs the 'bench' extra (missing: {', '.join(missing)}): "
            "run `make bench`, or install it with `pip install 'whispr[bench]'`"
        )
