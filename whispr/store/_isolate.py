"""Group commit that one bad message cannot fail for everyone: the same for both stores.

A group-commit batch holds many users' sends in many conversations, written
atomically in one round trip. If the store refuses one message of it (a value
the checks let through and the database does not take, a constraint), the
whole statement fails; without this module every caller of the batch would
get that message's error. Here the batch is split instead: messages the
checks refuse are answered ``invalid`` before anything is written, and if the
store still refuses the rest, it is bisected and each half written on its
own, down to the one message refused (its result ``invalid``). Everyone else
gets their own outcome.

This lives in the stores' ``insert_messages`` rather than in
``supervisors.batching.Batcher``: only the store knows which failures belong
to one row (``invalid``, ``conflict``, ``not_found``) and which to the whole
store (``unavailable``: raised at once, with no retry row by row against a
database that is down). The Batcher stays a generic utility.

Splitting gives up the atomicity of the batch as a whole, never of a
message: each half is atomic, written in batch order (seqs stay in order and
gap-free), and a client id repeated across halves is a ``duplicate`` of the
first as before. If the store fails while halves are written, the batch
fails with ``unavailable`` although some halves may be durable: callers
retry with the same client id and get their original message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import structlog

from actors.errors import Reason, WhisprError
from actors.model import InsertResult, Message
from whispr.store import _check

__all__ = ["insert_isolated"]

log = structlog.get_logger("whispr.store")

Write = Callable[[Sequence[Message]], Awaitable[list[InsertResult]]]

#: Refusals that belong to a message, not to the store: another batch without it may pass.
_ROW_REASONS = frozenset({Reason.INVALID, Reason.CONFLICT, Reason.NOT_FOUND})


async def insert_isolated(write: Write, batch: Sequence[Message]) -> list[InsertResult]:
    """``write(batch)``, with each message refused on its own (see the module docstring).

    ``write`` is the store's atomic batch write; it may assume every message passed the
    store's checks.
    """
    if not batch:
        return []
    results: list[InsertResult | None] = [None] * len(batch)
    valid = _refuse_malformed(batch, results)
    written = await _write_apart(write, [batch[i] for i in valid])
    for index, result in zip(valid, written, strict=True):
        results[index] = result
    return [r for r in results if r is not None]


def _refuse_malformed(batch: Sequence[Message], results: list[InsertResult | None]) -> list[int]:
    """The indexes of the messages that pass the store's checks; the others' results set."""
    try:
        _check.messages(batch)  # the common case: all well formed, one fast pass
    except WhisprError:
        pass
    else:
        return list(range(len(batch)))
    valid = []
    for index, message in enumerate(batch):
        try:
            _check.messages((message,))
        except WhisprError as error:
            results[index] = _refused(message, error)
        else:
            valid.append(index)
    return valid


async def _write_apart(write: Write, batch: Sequence[Message]) -> list[InsertResult]:
    """Write ``batch``; if the store refuses it for a message, each half on its own."""
    if not batch:
        return []
    try:
        return await write(batch)
    except WhisprError as error:
        if error.reason not in _ROW_REASONS:
            raise
        if len(batch) == 1:
            return [_refused(batch[0], error)]
        log.info("store refused a batch; writing it in halves", size=len(batch))
    middle = len(batch) // 2
    first = await _write_apart(write, batch[:middle])
    return first + await _write_apart(write, batch[middle:])


def _refused(message: Message, error: WhisprError) -> InsertResult:
    field = error.details.get("field")
    log.info(
        "store refused a message",
        conversation_id=message.conversation_id,
        sender_id=message.sender_id,
        reason=error.reason.value,
        field=field,
    )
    return InsertResult(
        status="invalid",
        message=message,
        detail=error.message,
        field=field if isinstance(field, str) else None,
    )
