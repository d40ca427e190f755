"""The end-to-end benchmark measures what it says, at its quick size (no timing thresholds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from whispr.bench.e2e import run_suite

pytestmark = pytest.mark.timeout(120)


def test_a_quick_run_writes_every_figure(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHISPR_BENCH_DATABASE_URL", postgres_url)
    report = run_suite(tmp_path, quick=True)
    written = json.loads((tmp_path / "e2e.json").read_text())
    for field in ("plain_send_msgs_per_s", "e2e_send_msgs_per_s", "bundle_fetch_per_s"):
        assert written[field] > 0, field
        assert f"| {field} |" in (tmp_path / "e2e.md").read_text()
    assert report["envelopes_per_message"] == 9
    assert report["messages"] == 500
