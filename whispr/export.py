"""``whispr export``: an operator's export of history as JSON Lines, with a progress bar.

It reads the store directly (no node needed), through the same
:class:`~actors.search_reads.SearchReads` as the gRPC ``ExportHistory`` call, so the lines
are the same: one message per line (``actors.search_reads.json_line``), by conversation
then seq. With ``--user``, what that user sees (their conversations, or the one named,
without the messages they hid); with ``--conversation`` alone, all of that conversation.
One page of messages is in memory at a time; the bar (on stderr, shown only on a terminal)
counts lines against the conversations' last seqs when the export started.
"""

from __future__ import annotations

from typing import BinaryIO

from tqdm import tqdm

from actors.ports import Store
from actors.search import CursorCodec
from actors.search_reads import SearchReads, json_line

__all__ = ["export_history"]


async def export_history(
    store: Store,
    out: BinaryIO,
    *,
    user_id: str | None,
    conversation_id: str | None,
    progress: bool | None = None,
) -> int:
    """Write the export to ``out``; the number of lines written.

    ``progress``: True to show the bar, False to hide it, None to show it on a terminal.
    Refusals (an unknown conversation, a user who is not a member) are ``WhisprError``.
    """
    reads = SearchReads(store, CursorCodec(b""))  # an export takes no search cursor
    plan = await reads.plan(user_id, conversation_id)
    written = 0
    with tqdm(
        total=plan.total,
        unit="msg",
        unit_scale=True,
        disable=None if progress is None else not progress,
        desc="export",
    ) as bar:
        async for message in reads.export(user_id, plan):
            out.write(json_line(message) + b"\n")
            written += 1
            bar.update()
    out.flush()
    return written
