"""Reading a node's ``GET /metrics`` as Prometheus would: over HTTP, with prometheus_client's
parser of the text format."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.services import services_required

__all__ = ["fetch_metrics", "parse_samples", "promtool_check_metrics", "sample_values", "scrape"]


def fetch_metrics(base_url: str) -> str:
    """The text of ``GET {base_url}/metrics``."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=5) as response:
        return bytes(response.read()).decode()


def parse_samples(text: str) -> list[Sample]:
    """Every sample of an exposition, histograms' buckets, sums and counts included."""
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


async def scrape(base_url: str) -> list[Sample]:
    """Scrape a node (off the event loop: the node may be served by this very loop)."""
    return parse_samples(await asyncio.to_thread(fetch_metrics, base_url))


def sample_values(samples: list[Sample], name: str, **labels: str) -> list[float]:
    """The values of the samples named ``name`` whose labels include ``labels``."""
    return [
        sample.value
        for sample in samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]


def promtool_check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    """``promtool check metrics`` on an exposition (promtool is found on ``PATH``; without it
    the test is skipped, or fails when ``WHISPR_REQUIRE_SERVICES=1``, as CI sets:
    ``scripts/services.sh`` installs it)."""
    binary = shutil.which("promtool")
    if binary is None:
        reason = "promtool is not installed (scripts/services.sh installs it)"
        if services_required():
            pytest.fail(f"{reason} (required: WHISPR_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(reason)
    return subprocess.run(
        [binary, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
