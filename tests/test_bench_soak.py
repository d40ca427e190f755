"""The soak run measures what it says, for a few seconds (no thresholds on the node's figures)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from whispr.bench.nodes import free_port
from whispr.bench.sampler import METRICS, Sampler
from whispr.bench.soak import SoakScenario, main, run
from whispr.bench.trend import Tolerance, judge, second_half, slope


def test_the_slope_is_the_least_squares_one() -> None:
    times = [0.0, 1.0, 2.0, 3.0]
    assert slope(times, [5.0, 7.0, 9.0, 11.0]) == pytest.approx(2.0)
    assert slope(times, [3.0, 3.0, 3.0, 3.0]) == 0.0
    assert slope([1.0], [4.0]) == 0.0  # one instant tells no trend
    assert second_half([0.0, 10.0, 20.0], [1.0, 2.0, 3.0]) == ([10.0, 20.0], [2.0, 3.0])


def test_a_flat_series_is_flat_and_a_leaking_one_is_flagged() -> None:
    times = [float(t) for t in range(0, 600, 5)]
    # 100 MiB, noisy, with a warm-up climb in the first half: still flat.
    flat = [
        100.0 + (20.0 * t / 300 if t < 300 else 20.0) + (1.0 if i % 2 else -1.0)
        for i, t in enumerate(times)
    ]
    verdict = judge(times, flat, 600.0, Tolerance(0.05, 1.0))
    assert verdict["flat"] is True
    assert abs(verdict["slope_per_hour"]) < 60  # the warm-up is left out
    assert (verdict["start"], verdict["end"]) == (flat[0], flat[-1])
    # 1 unit a minute over 10 minutes: 10 units on a mean of about 115, above 5 %.
    leaking = [100.0 + t / 60 for t in times]
    verdict = judge(times, leaking, 600.0, Tolerance(0.05, 1.0))
    assert verdict["flat"] is False
    assert verdict["slope_per_hour"] == pytest.approx(60.0)
    assert verdict["drift_over_run"] == pytest.approx(10.0)
    # A count that gains a couple of sockets is within its absolute bound; a dozen is not.
    assert judge(times, [12.0 + 2.0 * t / 600 for t in times], 600.0, Tolerance(0.0, 4))["flat"]
    assert not judge(times, [12.0 + 12.0 * t / 600 for t in times], 600.0, Tolerance(0.0, 4))[
        "flat"
    ]


def test_a_short_soak_writes_every_series_a_summary_and_a_plot(tmp_path: Path) -> None:
    scenario = SoakScenario(
        connections=12,
        conversation_size=3,
        rate=20,
        duration=4,
        churn_fraction=0.25,
        churn_every=1.0,
        away=0.2,
        sample_every=0.5,
    )
    report = run(scenario, tmp_path, "test")
    written = json.loads((tmp_path / "soak.json").read_text())
    assert set(written["series"]) == set(METRICS)
    figures = written["figures"]
    assert figures["messages_acked"] > 0
    assert figures["messages_failed"] == 0
    assert figures["reconnects"] > 0
    assert figures["reconnect_failures"] == 0
    assert figures["missing"] == 0  # every acknowledged message reached every member
    assert figures["duplicates"] == 0
    for name in ("rss_bytes", "open_fds", "threads", "connections", "conversation_actors"):
        verdict = written["series"][name]
        assert verdict["samples"] >= 4, name
        for key in ("start", "end", "slope_per_hour", "drift_over_run", "tolerance", "flat"):
            assert verdict[key] is not None, (name, key)
    # Read from the node's /metrics: its 12 clients and 4 conversation actors.
    assert written["series"]["connections"]["end"] == 12  # sampled with nobody away
    assert written["series"]["conversation_actors"]["end"] == 4
    assert report["flat"] in (True, False)
    assert len(written["samples"]) == written["series"]["rss_bytes"]["samples"]
    assert "| open_fds |" in (tmp_path / "soak.md").read_text()
    assert (tmp_path / "soak.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_arguments_are_refused_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--duration", "0"])
    assert "--duration must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--churn-fraction", "2"])
    assert "--churn-fraction" in capsys.readouterr().err


async def test_a_node_that_does_not_answer_metrics_leaves_a_gap_not_a_failed_run() -> None:
    # A port nothing listens on: /metrics cannot be read, the process figures still are.
    sampler = Sampler([os.getpid()], [free_port()])
    values = await sampler.sample()
    assert values["connections"] is None
    assert values["conversation_actors"] is None
    assert values["rss_bytes"] is not None
    assert values["rss_bytes"] > 0
