"""The store benchmark's search figures, run small on the real PostgreSQL: the load, the
percentiles, the export of every message the user sees, and the overhead's two measures."""

from __future__ import annotations

import pytest

from whispr.bench.search import QUERIES, USER_CONVERSATIONS, measure_search

pytestmark = pytest.mark.services


async def test_search_figures_at_a_small_size(postgres_url: str) -> None:
    figures = await measure_search(postgres_url, 4_000, per_sender=1, rounds=1)
    assert figures["search_messages"] == 4_000
    assert figures["search_user_conversations"] == USER_CONVERSATIONS
    assert figures["search_queries"] == QUERIES
    assert 0 < figures["search_p50_ms"] <= figures["search_p95_ms"]
    assert figures["search_hits_per_query"] > 1  # the queries find something
    # The user is in every conversation at this size: the export is the whole store.
    assert figures["export_messages"] == 4_000
    assert figures["export_msgs_per_s"] > 0
    for name in ("index_overhead_pct", "index_overhead_batch_write_pct"):
        assert isinstance(figures[name], float)
