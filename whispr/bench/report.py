"""Writing benchmark results: JSON for machines, Markdown and PNG for people.

Shared by every suite, so that all of ``bench-results/`` reads the same way:
``<suite>.json`` (every figure, plus the machine), ``<suite>.md`` (a table a
person reads, with the targets and whether each is met) and ``<suite>.png``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "Target",
    "machine",
    "markdown_table",
    "percentile",
    "plot_bars",
    "plot_cdf",
    "plot_series",
    "write_json",
    "write_text",
]


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }


@dataclass(frozen=True, slots=True)
class Target:
    """A bound a figure should meet: ``Target("<", 0.5)`` reads "below 0.5"."""

    operator: Literal["<", "<=", ">", ">="]
    bound: float

    def met(self, value: float) -> bool:
        """Whether ``value`` meets the target."""
        if self.operator == "<":
            return value < self.bound
        if self.operator == "<=":
            return value <= self.bound
        if self.operator == ">":
            return value > self.bound
        return value >= self.bound

    def __str__(self) -> str:
        return f"{self.operator} {self.bound:,g}"


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of ``samples`` (``fraction`` in [0, 1]).

    Raises:
        ValueError: if there are no samples.
    """
    if not samples:
        msg = "no samples"
        raise ValueError(msg)
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented JSON with sorted keys (diffs stay readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write ``text``, creating the directory if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 99.95:
            return f"{value:,.0f}"
        return f"{value:#.3g}".rstrip(".")  # 1.00, 0.582, 15.6
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table, numbers formatted for reading.

    Floats below 100 keep three significant digits, larger numbers are
    rounded and grouped by thousands, booleans read "yes" / "**no**", and
    ``None`` leaves the cell empty.
    """
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_cdf(
    path: Path,
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    xlabel: str,
    marks: Mapping[str, float] | None = None,
) -> None:
    """Cumulative distributions of samples (latencies), one line per series, log x axis.

    ``marks`` draws labelled vertical lines (a target, say).
    """
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for label, samples in series.items():
        ordered = sorted(samples)
        if not ordered:
            continue
        fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
        axes.plot(ordered, fractions, label=f"{label} (n={len(ordered):,})")
    for label, x in (marks or {}).items():
        axes.axvline(x, linestyle="--", color="grey", linewidth=1)
        axes.annotate(label, (x, 0.02), rotation=90, fontsize=8, color="grey")
    axes.set_xscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("fraction of samples")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="center right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_bars(
    path: Path,
    groups: Mapping[str, Mapping[str, float]],
    *,
    title: str,
    ylabel: str,
    log: bool = False,
) -> None:
    """Grouped bars: one group per key of ``groups``, one bar per series inside it.

    ``{"tells/s": {"asyncio": 2e5, "threading": 700}}`` draws one group of two bars.
    """
    plt = _pyplot()
    series = sorted({name for values in groups.values() for name in values})
    width = 0.8 / max(1, len(series))
    figure, axes = plt.subplots(figsize=(max(6.0, 1.6 * len(groups)), 4.5))
    for index, name in enumerate(series):
        xs = [g + index * width for g in range(len(groups))]
        ys = [values.get(name, 0.0) for values in groups.values()]
        axes.bar(xs, ys, width=width, label=name)
    axes.set_xticks([g + width * (len(series) - 1) / 2 for g in range(len(groups))])
    axes.set_xticklabels(list(groups))
    if log:
        axes.set_yscale("log")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(True, axis="y", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_series(
    path: Path,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
    xlabel: str,
) -> None:
    """Time series, one small panel each (their units differ): ``{label: (xs, ys)}``.

    For values over a run (a soak's memory, descriptors, connections), where the shape of
    each line is the point, not how one compares with another.
    """
    plt = _pyplot()
    drawn = {label: xy for label, xy in series.items() if xy[0]}
    columns = 2
    rows = max(1, math.ceil(len(drawn) / columns))
    figure, grid = plt.subplots(rows, columns, figsize=(10, 2.4 * rows), squeeze=False)
    panels = [axes for row in grid for axes in row]
    for axes, (label, (xs, ys)) in zip(panels, drawn.items(), strict=False):
        axes.plot(xs, ys, linewidth=1.2)
        axes.set_title(label, fontsize=9)
        axes.set_xlabel(xlabel, fontsize=8)
        axes.tick_params(labelsize=8)
        axes.grid(True, alpha=0.3)
    for axes in panels[len(drawn) :]:
        axes.set_visible(False)
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
