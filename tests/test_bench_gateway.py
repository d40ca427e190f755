"""The load generator measures what it says, at a tiny size (no timing thresholds)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from whispr.bench.gateway import Scenario, main, node_for, run


def test_a_small_scenario_writes_every_field_a_summary_and_a_plot(tmp_path: Path) -> None:
    scenario = Scenario(connections=12, conversation_size=3, rate=30, duration=1, reconnecting=4)
    report = run(scenario, tmp_path, "test")
    written = json.loads((tmp_path / "gateway.json").read_text())
    for field in [
        "connections_held",
        "msgs_per_s",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "reconnect_catchup_p95_ms",
        "server_rss_bytes_per_connection",
        "server_cpu_us_per_msg",
        "generator_cpu_us_per_msg",
        "machine_cpu_us_per_msg",
        "machine_busy_fraction",
        "other_cpu_us_per_msg",
    ]:
        assert written[field] is not None, field
    assert written["server_cpu_us_per_msg"] > 0
    # The machine's busy CPU includes the node's and the generator's.
    assert written["machine_cpu_us_per_msg"] >= written["server_cpu_us_per_msg"]
    assert 0 < written["machine_busy_fraction"] <= 1
    assert written["other_cpu_us_per_msg"] < written["machine_cpu_us_per_msg"]
    assert report["connections_held"] == 12
    assert report["messages_failed"] == 0
    assert report["messages_acked"] == 30  # rate x duration, however late the ticks ran
    assert report["deliveries"] == report["messages_acked"] * 3
    assert report["reconnect_failures"] == 0
    assert "ceiling" not in report  # the relay runs only when asked for
    assert "| msgs_per_s |" in (tmp_path / "gateway.md").read_text()
    assert (tmp_path / "gateway.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_arguments_are_refused_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--connections", "0"])
    assert "--connections must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--relay", "--ceiling"])
    assert "leave out --relay" in capsys.readouterr().err


def test_members_are_spread_over_nodes_or_placed_by_conversation() -> None:
    spread = [
        node_for(member, conversation, 2, "spread")
        for conversation in range(2)
        for member in range(4)
    ]
    assert spread == [0, 1, 0, 1, 0, 1, 0, 1]
    by_conversation = [
        node_for(member, conversation, 2, "conversation")
        for conversation in range(3)
        for member in range(2)
    ]
    assert by_conversation == [0, 0, 1, 1, 0, 0]
    assert node_for(3, 5, 1, "spread") == node_for(3, 5, 1, "conversation") == 0


def test_across_two_nodes_every_member_gets_every_message_once(
    tmp_path: Path, postgres_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHISPR_BENCH_DATABASE_URL", postgres_url)
    monkeypatch.setenv("WHISPR_BENCH_REDIS_URL", redis_url)
    scenario = Scenario(
        connections=40, conversation_size=4, rate=80, duration=2, nodes=2, reconnecting=8
    )
    report = run(scenario, tmp_path, "test")
    assert (report["nodes"], report["placement"]) == (2, "spread")
    assert report["messages_failed"] == 0
    # Members of one conversation sit on both nodes, so two actors race for its seqs and
    # events arrive from two publishers: still exactly one delivery per member.
    assert report["deliveries"] == report["messages_acked"] * 4
    # What PostgreSQL and Redis spend is measured when they run on this machine (it may
    # round to zero in so short a run: /proc counts in clock ticks).
    for url, figure in (
        (postgres_url, "store_cpu_us_per_msg"),
        (redis_url, "broker_cpu_us_per_msg"),
    ):
        if urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1"):
            assert report[figure] is not None, figure
            assert report[figure] >= 0, figure
        else:
            assert report[figure] is None, figure


def test_the_bare_relay_runs_the_same_scenario(tmp_path: Path) -> None:
    scenario = Scenario(
        connections=12, conversation_size=3, rate=30, duration=1, reconnecting=4, relay=True
    )
    report = run(scenario, tmp_path, "test")
    assert report["store"] == "none (bare relay)"
    assert report["messages_acked"] == 30
    assert report["deliveries"] == 30 * 3
    assert report["reconnect_failures"] == 0  # caught up from the relay's memory
    # The relay's own CPU, to compare with a node's (it may round to zero in so short a run:
    # /proc counts in clock ticks, and 30 messages cost the relay a few milliseconds).
    assert report["server_cpu_us_per_msg"] is not None
    assert report["server_cpu_us_per_msg"] >= 0


def test_the_ceiling_runs_the_same_scenario_against_the_relay_right_after(tmp_path: Path) -> None:
    scenario = Scenario(
        connections=12, conversation_size=3, rate=30, duration=1, reconnecting=4, ceiling=True
    )
    report = run(scenario, tmp_path, "test")
    assert report["store"] != "none (bare relay)"  # the headline figures are the nodes'
    ceiling = json.loads((tmp_path / "gateway.json").read_text())["ceiling"]
    assert 0 < ceiling["msgs_per_s"] <= 30  # all 30 sent, over at least the 1 s asked
    assert ceiling["server_cpu_us_per_msg"] is not None  # the relay's (may round to zero)
    assert ceiling["latency_p95_ms"] is not None
    assert ceiling["reconnect_catchup_p95_ms"] is not None
    summary = (tmp_path / "gateway.md").read_text()
    assert "## The ceiling: the bare relay under the same load" in summary
    assert "| latency_p95_ms |" in summary.split("## The ceiling")[1]
    assert (tmp_path / "gateway.png").read_bytes()[:4] == b"\x89PNG"
