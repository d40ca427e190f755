"""The node process's garbage-collection policy.

CPython frees most objects by reference counting; its cyclic collector is there for cycles,
and a full collection examines every object it tracks. A node holding 10,000 connections
tracks about 1.1 million (some 110 per connection, most of them websockets' and asyncio's),
and with CPython's default thresholds (700, 10, 10) full collections came every 2 to 5 s
and stopped the event loop for 225 to 690 ms each, so every message in flight waited: at
500 messages/s, P95 364 ms and P99 683 ms, against 5.4 to 6.4 ms and 120 to 166 ms with this
policy (``whispr bench --connections 10000 --rate 500``, docs/performance.md).

Two measures, applied once the node is up:

- what is alive then (modules, the supervision tree, settings, pools) is frozen
  (:func:`gc.freeze`): no collection examines it again;
- the thresholds (``WHISPR_GC_THRESHOLDS``, default ``50000,20,100``) make young
  collections rarer, so more short-lived objects are freed by reference counting before
  they are ever examined, and full collections a hundred times rarer. A busy node has many
  objects in flight (each message's futures, coroutines and structs live for its commit):
  with a young threshold of 10,000 they were examined, and promoted, again and again. One
  node at 10,000 msgs/s in pairs: P95 110 to 3,507 ms (5 runs, median 719) with
  ``10000,10,100``, 27 to 230 ms (8 runs, median about 100) with ``50000,20,100``.

The price is memory: a cycle that reached the oldest generation is reclaimed at the next
full collection, later than by default. So the node's own objects should not form cycles:
a closed connection leaves none (tests/gateway/test_reference_cycles.py), and is freed by
reference counting at once.
"""

from __future__ import annotations

import gc

__all__ = ["DEFAULT_THRESHOLDS", "apply"]

#: Young generation, then collections of one generation per collection of the next.
DEFAULT_THRESHOLDS = (50_000, 20, 100)


def apply(thresholds: tuple[int, int, int] = DEFAULT_THRESHOLDS) -> None:
    """Freeze what is alive now and set the collector's thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
