"""``search`` on ``conversation:<id>`` and ``user:<id>``: full-text search of what the user
can see (``actors/search.py``, ``actors/search_reads.py``).

On a conversation's channel it searches that conversation; on the user's own channel, every
conversation of the user, or the one ``conversation_id`` names. The reply is a page of hits,
best first, and a ``cursor`` for the next page (null on the last): pass it back with the
same query and filters, or it is refused ``invalid`` (field ``cursor``).

The same event searches end-to-end messages by their blind-index tokens instead of words
(``blind_tokens``, docs/e2e.md): one event, because a client searches one conversation's
history whichever way its messages were written; the server cannot read an end-to-end
message's words, so a search names either words or tokens, never both.
"""

from __future__ import annotations

from typing import Any

import msgspec

from actors.errors import Reason, WhisprError
from actors.messaging import Messaging
from actors.model import MessageKind
from actors.search import MessageFilters, SearchPage
from whispr.gateway.channels.base import Channel, EventTable, Payload, Reply

__all__ = ["Search", "SearchAll", "register_conversation", "register_user", "run_search"]


class Search(Payload):
    """``search`` on ``conversation:<id>``: ``query`` (1 to 256 characters; every word must
    match), optional filters (``sender_id``, ``kind``, ``has_attachment``, ``since``
    included and ``until`` excluded in seconds since the epoch), ``limit`` (at most 200)
    and the previous page's ``cursor``."""

    query: str | None = None
    #: Instead of ``query``: blind-index tokens (base64), for end-to-end messages; the reply is
    #: then ``{"seqs"}``, newest first, before ``before_seq`` if given.
    blind_tokens: tuple[bytes, ...] | None = None
    before_seq: int | None = None
    sender_id: str | None = None
    kind: MessageKind | None = None
    has_attachment: bool | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 20
    cursor: str | None = None

    def filters(self) -> MessageFilters:
        return MessageFilters(
            sender_id=self.sender_id, kind=self.kind, since=self.since, until=self.until
        )


class SearchAll(Search):
    """``search`` on ``user:<id>``: as on a conversation, across all of the user's
    conversations, or in the one ``conversation_id`` names."""

    conversation_id: str | None = None


def page_reply(page: SearchPage) -> Reply:
    """The reply to a search: ``{"hits": [{"message", "rank", "snippet", "highlights"}],
    "cursor"}``."""
    result: dict[str, Any] = msgspec.to_builtins(page)
    return result


async def run_search(
    messaging: Messaging, user_id: str, p: Search, conversation_id: str | None
) -> SearchPage | list[int]:
    """A search by ``user_id``: a page of hits for words, or for ``blind_tokens`` the seqs
    of one conversation's end-to-end messages, newest first. The socket's ``search`` and the
    HTTP API's search routes both answer with it."""
    if p.blind_tokens is not None:
        if p.query is not None:
            raise WhisprError(Reason.INVALID, "name words or blind tokens, not both", field="query")
        if conversation_id is None:
            raise WhisprError(
                Reason.INVALID, "a blind search names its conversation", field="conversation_id"
            )
        return await messaging.search_blind(
            user_id, conversation_id, p.blind_tokens, before_seq=p.before_seq, limit=p.limit
        )
    if p.query is None:
        raise WhisprError(Reason.INVALID, "name the words to search for", field="query")
    return await messaging.searches.search(
        user_id,
        p.query,
        conversation_id=conversation_id,
        filters=p.filters(),
        has_attachment=p.has_attachment,
        limit=p.limit,
        cursor=p.cursor,
    )


async def _search(channel: Channel, p: Search, conversation_id: str | None) -> Reply:
    host = channel.host
    found = await run_search(host.ctx.messaging, host.user_id, p, conversation_id)
    if isinstance(found, list):  # blind-index search (docs/e2e.md)
        return {"seqs": found}
    return page_reply(found)


async def search_conversation(channel: Channel, p: Search, _event: str) -> Reply:
    return await _search(channel, p, channel.target)


async def search_all(channel: Channel, p: SearchAll, _event: str) -> Reply:
    return await _search(channel, p, p.conversation_id)


def register_conversation(table: EventTable[Any]) -> None:
    """Add ``search`` to the conversation channel's table."""
    table.on("search", Search)(search_conversation)


def register_user(table: EventTable[Any]) -> None:
    """Add ``search`` to the user channel's table."""
    table.on("search", SearchAll)(search_all)
