"""The gRPC benchmark measures what it says, at a tiny size (no timing thresholds)."""

from __future__ import annotations

import json
from pathlib import Path

from whispr.bench.grpc import run


def test_a_short_run_writes_every_field_a_summary_and_a_plot(tmp_path: Path) -> None:
    report = run(tmp_path, callers=3, duration=1.0, command="test")
    written = json.loads((tmp_path / "grpc.json").read_text())
    for field in ["send_system_message_per_s", "send_p95_ms", "send_p50_ms", "send_p99_ms"]:
        assert written[field] is not None, field
    assert report["callers"] == 3
    assert report["messages_answered"] > 0
    assert report["messages_failed"] == 0
    assert "| send_p95_ms |" in (tmp_path / "grpc.md").read_text()
    assert (tmp_path / "grpc.png").read_bytes()[:4] == b"\x89PNG"
