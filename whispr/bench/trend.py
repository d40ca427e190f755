"""Is a series flat? The slope of a resource over a soak run, and a verdict on it.

A leak shows as a steady climb under steady load, while warm-up (caches filling, the
allocator's arenas, the first conversation actors) climbs at the start and stops. So the
slope is fitted over the second half of the run only, by least squares (robust to the
sample-to-sample noise churn causes), and projected over the whole run: ``drift`` is what
the series would gain in a run as long as this one at that rate. The series is flat when the
drift is within its tolerance: a share of its mean (a memory that grows by a few percent per
run is noise of the allocator, not a leak) or an absolute bound, whichever is larger (an fd
count of 12 that gains 2 is not a 17 % leak; it is two sockets in flight at the sample).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Tolerance", "judge", "second_half", "slope"]


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How much a series may drift over a run and still be flat: the larger of the two."""

    relative: float
    absolute: float

    def bound(self, mean: float) -> float:
        """The drift allowed for a series of this ``mean``."""
        return max(self.absolute, self.relative * abs(mean))

    def __str__(self) -> str:
        return f"max({self.relative:.0%} of mean, {self.absolute:,g})"


def slope(times: Sequence[float], values: Sequence[float]) -> float:
    """The least-squares slope of ``values`` over ``times`` (units per time unit).

    Zero for fewer than two distinct times: no trend can be told from one instant.
    """
    n = len(times)
    if n != len(values):
        msg = f"{n} times for {len(values)} values"
        raise ValueError(msg)
    if n < 2:
        return 0.0
    mean_t = sum(times) / n
    mean_v = sum(values) / n
    spread = sum((t - mean_t) ** 2 for t in times)
    if spread == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in zip(times, values, strict=True)) / spread


def second_half(times: Sequence[float], values: Sequence[float]) -> tuple[list[float], list[float]]:
    """The samples taken in the second half of the run (by time, not by count)."""
    if not times:
        return [], []
    middle = (times[0] + times[-1]) / 2
    kept = [(t, v) for t, v in zip(times, values, strict=True) if t >= middle]
    return [t for t, _ in kept], [v for _, v in kept]


def judge(
    times_s: Sequence[float],
    values: Sequence[float],
    duration_s: float,
    tolerance: Tolerance,
) -> dict[str, Any]:
    """Start, end, mean, slope per hour over the second half, drift over the run, verdict.

    ``times_s`` are seconds since the run began; ``duration_s`` is the run's length, over
    which the second half's slope is projected.
    """
    if not values:
        return {"samples": 0, "flat": None}
    half_t, half_v = second_half(times_s, values)
    per_second = slope(half_t, half_v)
    mean = sum(half_v) / len(half_v)
    drift = per_second * duration_s
    bound = tolerance.bound(mean)
    return {
        "samples": len(values),
        "start": values[0],
        "end": values[-1],
        "mean_second_half": mean,
        "slope_per_hour": per_second * 3600.0,
        "drift_over_run": drift,
        "tolerance": bound,
        "tolerance_rule": str(tolerance),
        "flat": abs(drift) <= bound,
    }
