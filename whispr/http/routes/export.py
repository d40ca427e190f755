"""``/api/v1/export`` and ``/api/v1/conversations/{id}/export``: a user's history as JSON
Lines (``application/jsonl``), streamed.

The same reads as gRPC ``ExportHistory`` and the ``whispr export`` command
(:class:`~actors.search_reads.SearchReads`): the plan (what will be walked) is made before
the response starts, so a refusal (``not_member``, ``not_found``) is still a problem
document; then each store page goes out as it is read, one line per message
(:func:`~actors.search_reads.json_line`), and the next page is read only once the client
has taken the previous one (the ASGI server's flow control). The node holds one page
whatever the export's size. Its header ``X-Export-Total`` bounds the lines to come (the
plan's ``total``, for a progress bar).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

from litestar import Router, get
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath
from litestar.response import Stream

from actors.model import Message
from actors.rules import MAX_PAGE
from actors.search_reads import ExportPlan, SearchReads, json_line
from whispr.auth import Identity
from whispr.http.context import HttpContext
from whispr.http.problems import problems
from whispr.http.routes.common import CONVERSATION

__all__ = ["JSON_LINES", "router"]

#: The media type of an export: one JSON message per line.
JSON_LINES: Final = "application/jsonl"
#: The header giving the plan's bound on the lines to come.
TOTAL_HEADER: Final = "X-Export-Total"

#: The documented answers: each line of a 200 is a ``Message``, and the refusals.
_RESPONSES = {
    200: ResponseSpec(
        data_container=Message,
        description="One message per line, as history shows it (JSON Lines).",
        media_type=JSON_LINES,
        generate_examples=False,
    ),
    **problems(400, 401, 403, 404, 503),
}
_HEADERS = [
    ResponseHeader(
        name=TOTAL_HEADER,
        description="At most this many lines will come (messages sent during the export "
        "may be in it too, if they arrive in time).",
        documentation_only=True,
    )
]


async def _lines(reads: SearchReads, user_id: str, plan: ExportPlan) -> AsyncIterator[bytes]:
    """The export's lines, a store page's worth per chunk."""
    chunk: list[bytes] = []
    async for message in reads.export(user_id, plan):
        chunk.append(json_line(message))
        if len(chunk) == MAX_PAGE:
            yield b"\n".join(chunk) + b"\n"
            chunk = []
    if chunk:
        yield b"\n".join(chunk) + b"\n"


async def _stream(ctx: HttpContext, user_id: str, conversation_id: str | None) -> Stream:
    reads = ctx.messaging.searches
    plan = await reads.plan(user_id, conversation_id)
    return Stream(
        _lines(reads, user_id, plan),
        media_type=JSON_LINES,
        headers={TOTAL_HEADER: str(plan.total)},
    )


@get(
    "/export",
    summary="Export all of one's conversations",
    media_type=JSON_LINES,
    response_headers=_HEADERS,
    responses=_RESPONSES,
)
async def export_all(
    ctx: NamedDependency[HttpContext], identity: NamedDependency[Identity]
) -> Stream:
    """Every message of every conversation of the user, as history shows it to them (by
    conversation, then seq), one JSON object per line."""
    return await _stream(ctx, identity.user_id, None)


@get(
    f"{CONVERSATION}/export",
    summary="Export a conversation",
    media_type=JSON_LINES,
    response_headers=_HEADERS,
    responses=_RESPONSES,
)
async def export_conversation(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
) -> Stream:
    """Every message of one conversation the user is a member of, by seq, one JSON object
    per line."""
    return await _stream(ctx, identity.user_id, conversation_id)


router = Router("/", route_handlers=[export_all, export_conversation], tags=["export"])
