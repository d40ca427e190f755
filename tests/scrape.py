"""Reading a node's ``GET /metrics`` as Prometheus would: over HTTP, with prometheus_client's
parser of the text format."""

from __future__ import annotations

import asyncio
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

__all__ = ["fetch_metrics", "parse_samples", "sample_values", "scrape"]


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
