"""``/api/v1/search`` and ``/api/v1/conversations/{id}/search``: full-text search of what
the user can see.

The socket's ``search`` on ``user:<id>`` and on ``conversation:<id>``
(``whispr/gateway/channels/search.py``): the query parameters are decoded into its payload
struct and answered by the same :func:`~whispr.gateway.channels.search.run_search`, counted
against the same ``search`` rate limit. Words give a page of hits, best first, whose
``next`` is the ``cursor`` of the page after (with the same query and filters); for an
end-to-end conversation, ``blind_tokens`` (base64, repeated) give the seqs of the messages
carrying every token, newest first (docs/e2e.md).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Router, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from actors.model import MessageKind
from actors.search import SearchHit
from whispr.auth import Identity
from whispr.gateway.channels.base import decode_payload
from whispr.gateway.channels.search import Search, run_search
from whispr.http.context import HttpContext
from whispr.http.problems import problems
from whispr.http.routes.common import CONVERSATION, counted

__all__ = ["SearchResults", "router"]

#: What a search may be refused with: bad input, the token, membership, the rate limit.
SEARCH_PROBLEMS = problems(400, 401, 403, 404, 429, 503)


class SearchResults(msgspec.Struct, kw_only=True):
    """A search's answer: ``hits`` best first for words, and ``next`` (the ``cursor`` of the
    page after; absent on the last); or ``seqs``, newest first, for ``blind_tokens``."""

    hits: list[SearchHit] = []
    seqs: list[int] | None = None
    next: str | None = None


Words = Annotated[
    str | None,
    # ``query`` is a name Litestar keeps for the whole query string: the parameter is
    # ``query`` on the wire, ``words`` in Python.
    QueryParameter(
        name="query", description="Words (1 to 256 characters), all of which must match."
    ),
]
BlindTokens = Annotated[
    list[str] | None,
    QueryParameter(
        description="Instead of `query`, in an end-to-end conversation: blind-index tokens "
        "(base64), repeated; every one must match."
    ),
]
BeforeSeq = Annotated[
    int | None, QueryParameter(description="With `blind_tokens`: before this seq.")
]
Sender = Annotated[str | None, QueryParameter(description="Only the messages of this sender.")]
Kind = Annotated[MessageKind | None, QueryParameter(description="Only this kind.")]
HasAttachment = Annotated[
    bool | None, QueryParameter(description="Only with (or without) attachments.")
]
Since = Annotated[
    float | None, QueryParameter(description="Sent from this time (seconds since the epoch).")
]
Until = Annotated[
    float | None, QueryParameter(description="Sent before this time (seconds since the epoch).")
]
Limit = Annotated[int, QueryParameter(description="At most this many (capped at 200).")]
Cursor = Annotated[str | None, QueryParameter(description="The previous page's `next`.")]


def _payload(**given: Any) -> Search:
    """The socket's payload from the query, decoded as the socket decodes it (base64
    tokens, the same refusals naming the same fields); absent parameters left out."""
    return decode_payload(Search, {k: v for k, v in given.items() if v is not None})


async def _answer(
    ctx: HttpContext, identity: Identity, kind: str, p: Search, conversation_id: str | None
) -> SearchResults:
    await counted(ctx, identity, kind, "search")
    found = await run_search(ctx.messaging, identity.user_id, p, conversation_id)
    if isinstance(found, list):
        return SearchResults(seqs=found)
    return SearchResults(hits=found.hits, next=found.cursor)


@get("/search", summary="Search all of one's conversations", responses=SEARCH_PROBLEMS)
async def search_all(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    words: Words = None,
    conversation_id: Annotated[
        str | None, QueryParameter(description="Only this conversation.")
    ] = None,
    blind_tokens: BlindTokens = None,
    before_seq: BeforeSeq = None,
    sender_id: Sender = None,
    kind: Kind = None,
    has_attachment: HasAttachment = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> SearchResults:
    """Search every conversation of the user (or the one ``conversation_id`` names, which
    ``blind_tokens`` needs)."""
    p = _payload(
        query=words,
        blind_tokens=blind_tokens,
        before_seq=before_seq,
        sender_id=sender_id,
        kind=kind,
        has_attachment=has_attachment,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    return await _answer(ctx, identity, "user", p, conversation_id)


@get(f"{CONVERSATION}/search", summary="Search a conversation", responses=SEARCH_PROBLEMS)
async def search_conversation(
    ctx: NamedDependency[HttpContext],
    identity: NamedDependency[Identity],
    conversation_id: FromPath[str],
    words: Words = None,
    blind_tokens: BlindTokens = None,
    before_seq: BeforeSeq = None,
    sender_id: Sender = None,
    kind: Kind = None,
    has_attachment: HasAttachment = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> SearchResults:
    """Search one conversation the user is a member of."""
    p = _payload(
        query=words,
        blind_tokens=blind_tokens,
        before_seq=before_seq,
        sender_id=sender_id,
        kind=kind,
        has_attachment=has_attachment,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    return await _answer(ctx, identity, "conversation", p, conversation_id)


router = Router("/", route_handlers=[search_all, search_conversation], tags=["search"])
