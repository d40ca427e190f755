"""The runtime benchmark measures what it says, at a tiny size (no timing thresholds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from whispr.bench.report import markdown_table, plot_cdf
from whispr.bench.runtime import TARGETS, Sizes, measure_asyncio, measure_threading

FIELDS = [*TARGETS, "ask_p99_us", "restart_logged_p50_ms", "restart_p99_ms"]


@pytest.mark.parametrize("measure", [measure_asyncio, measure_threading])
def test_every_figure_is_measured(measure: object) -> None:
    assert callable(measure)
    result = measure(Sizes(actors=40, tells=400, asks=50, warmup=5, restarts=5))
    for field in FIELDS:
        if field == "bytes_per_actor":
            # 40 actors may fit in memory the process already holds: measured, maybe zero.
            assert result[field] >= 0, field
        else:
            assert result[field] > 0, field
    assert result["actors"] == 40
    assert len(result["ask_samples_us"]) == 50
    assert result["ask_p99_us"] >= result["ask_p50_us"]


def test_report_helpers_write_a_table_and_a_plot(tmp_path: Path) -> None:
    table = markdown_table(["figure", "value", "met"], [["tell_per_s", 123456.0, True]])
    assert table.splitlines()[2] == "| tell_per_s | 123,456 | yes |"
    plot_cdf(tmp_path / "cdf.png", {"a": [1.0, 2.0, 3.0]}, title="t", xlabel="us")
    assert (tmp_path / "cdf.png").read_bytes()[:4] == b"\x89PNG"
