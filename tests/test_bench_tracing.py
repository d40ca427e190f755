"""The tracing benchmark measures both modes, each in its own process (no timing thresholds)."""

from __future__ import annotations

from whispr.bench.tracing import MODES, measure


def test_both_modes_are_measured_and_only_the_default_exports() -> None:
    off, default = measure(messages=3_000, repeats=1)
    assert (off["mode"], default["mode"]) == MODES
    assert off["cpu_us_per_message"] > 0
    assert default["cpu_us_per_message"] > 0
    assert off["spans_exported"] == 0
    # 1 in 100 of 3,000 messages, five spans each: none sampled has odds below 1e-13.
    assert default["spans_exported"] > 0
    assert default["spans_exported"] % 5 == 0
