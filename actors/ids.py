"""Server-made ids: one time-ordered scheme for everything the node names.

Messages, conversations (groups and direct ones), the client ids of system
messages and the device ids of tokens that name no device all get
:func:`new_id` (the last two with a prefix): 32 hex digits, 48 bits of
milliseconds then 80 bits that only grow. Time-ordered ids keep B-tree
inserts at the right edge of the index and sort like the records they name;
one scheme means one format to check, log and parse.
"""

from __future__ import annotations

import os
import time

__all__ = ["new_id", "system_client_id"]

_last_ms = 0
_low = 0


def new_id() -> str:
    """A unique id ordered by creation time: 32 hex digits.

    Like a monotonic ULID in hex: within one millisecond the low 80 bits
    count up from a random start, so ids made here are unique and ordered,
    and ids made on other nodes collide only if two random starts do. It is
    made on every send, so it costs one string format: no ``uuid4``, no
    ``os.urandom`` per id. Call it from the event loop's thread (it keeps
    its counter without a lock).
    """
    global _last_ms, _low
    ms = time.time_ns() // 1_000_000
    if ms > _last_ms:
        _last_ms = ms
        _low = int.from_bytes(os.urandom(10)) >> 1  # room to count up
    else:
        _low += 1
    return f"{_last_ms:012x}{_low:020x}"


def system_client_id() -> str:
    """The client id of a system message the node writes (``sys-`` and an id)."""
    return f"sys-{new_id()}"
