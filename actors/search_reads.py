"""A user's searches and exports: reads straight from the store, checked as history is.

Neither needs ordering with sends, so neither asks a conversation actor: a search is one
store query (``Store.search_messages``), an export a walk over history pages. Both apply
the history's rule of who sees what (``actors/search.py``): a search in one conversation,
an export of one, is refused ``not_member`` to a non-member (``not_found`` for a conversation
that does not exist), as history is; a search or export of all of a user's conversations
covers those they are a member of.

An export holds one page at a time (:data:`~actors.rules.MAX_PAGE` messages) and the list of
the conversations it walks, whatever their size: the caller streams each message on as it
comes (gRPC server stream, a file), so memory stays flat for a million messages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec

from actors import rules
from actors.errors import Reason, WhisprError
from actors.model import Message
from actors.ports import Store
from actors.rules import MAX_PAGE
from actors.search import (
    CursorCodec,
    MessageFilters,
    SearchPage,
    SearchPosition,
    SearchQuery,
    check_filters,
    check_query_text,
)

__all__ = ["ExportPlan", "SearchReads", "json_line"]

_CONVERSATIONS_PAGE = 200
_encoder = msgspec.json.Encoder()


def json_line(message: Message) -> bytes:
    """One line of an export: the message as the WebSocket API sends it (reactions, edit
    time, attachments' references, metadata), as JSON without a newline (the caller adds
    one). JSON escapes every control character, so a line never holds a newline of its own."""
    return _encoder.encode(message)


class ExportPlan(msgspec.Struct, frozen=True, kw_only=True):
    """What an export will walk: each conversation with its last seq when the plan was made.

    ``total`` bounds the messages it will write (tombstones included, hidden ones not), for
    a progress bar; messages sent after the plan are exported too, if they arrive in time.
    """

    conversations: list[tuple[str, int]]

    @property
    def total(self) -> int:
        return sum(last for _, last in self.conversations)


class SearchReads:
    """The reads of this module over one store; stateless, cheap to make per call."""

    def __init__(self, store: Store, cursors: CursorCodec) -> None:
        self.store = store
        self.cursors = cursors

    async def search(
        self,
        user_id: str,
        text: str,
        *,
        conversation_id: str | None = None,
        filters: MessageFilters | None = None,
        has_attachment: bool | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> SearchPage:
        """A page of the user's hits, best first; the page's ``cursor`` asks for the next."""
        rules.check_user_ids([user_id], "user_id")
        check_query_text(text)
        given = check_filters(filters or MessageFilters())
        page = rules.page_limit(limit)
        if has_attachment is not None and not isinstance(has_attachment, bool):
            raise WhisprError(
                Reason.INVALID, "has_attachment must be true or false", field="has_attachment"
            )
        if conversation_id is not None:
            await self.require_member(user_id, conversation_id)
        query = SearchQuery(
            viewer_id=user_id,
            text=text,
            conversation_id=conversation_id,
            filters=given,
            has_attachment=has_attachment,
            limit=page,
        )
        if cursor is not None:
            query = msgspec.structs.replace(query, after=self.cursors.decode(query, cursor))
        hits = await self.store.search_messages(query)
        next_cursor = None
        if len(hits) == page:
            last = hits[-1]
            position = SearchPosition(last.rank, last.message.conversation_id, last.message.seq)
            next_cursor = self.cursors.encode(msgspec.structs.replace(query, after=None), position)
        return SearchPage(hits=hits, cursor=next_cursor)

    async def plan(self, user_id: str | None, conversation_id: str | None) -> ExportPlan:
        """What an export by ``user_id`` (None: a trusted operator, who names a conversation)
        of one conversation or of all of the user's will walk."""
        if conversation_id is not None:
            if user_id is None:
                await self._require_conversation(conversation_id)
            else:
                await self.require_member(user_id, conversation_id)
            ids = [conversation_id]
        elif user_id is None:
            raise WhisprError(
                Reason.INVALID, "name a user or a conversation to export", field="conversation_id"
            )
        else:
            ids = await self._conversations_of(user_id)
        lasts = await self.store.last_seqs(ids)
        return ExportPlan(conversations=[(c, lasts[c]) for c in ids if c in lasts])

    async def export(self, user_id: str | None, plan: ExportPlan) -> AsyncIterator[Message]:
        """Every message of the plan's conversations as ``user_id`` sees its history (None:
        all of them), by conversation then seq, one page in memory at a time."""
        for conversation_id, _ in plan.conversations:
            after = 0
            while True:
                page = await self.store.page_messages(
                    conversation_id, after_seq=after, limit=MAX_PAGE, viewer_id=user_id
                )
                for message in page:
                    yield message
                if len(page) < MAX_PAGE:
                    break
                after = page[-1].seq

    async def require_member(self, user_id: str, conversation_id: str) -> None:
        """``not_found`` for an unknown conversation, ``not_member`` for a non-member."""
        await self._require_conversation(conversation_id)
        if not await self.store.memberships([(conversation_id, user_id)]):
            raise WhisprError(Reason.NOT_MEMBER, "you are not a member of this conversation")

    async def _require_conversation(self, conversation_id: str) -> None:
        if not conversation_id or len(conversation_id) > rules.MAX_ID:
            raise WhisprError(Reason.NOT_FOUND, f"no conversation {conversation_id!r}")
        rules.check_text(conversation_id, "conversation_id")
        if await self.store.get_conversation(conversation_id) is None:
            raise WhisprError(Reason.NOT_FOUND, f"no conversation {conversation_id!r}")

    async def _conversations_of(self, user_id: str) -> list[str]:
        """Every conversation of the user, listed once before the walk (a list by activity
        would move under the export as messages arrive)."""
        rules.check_user_ids([user_id], "user_id")
        ids: list[str] = []
        before: float | None = None
        before_id: str | None = None
        while True:
            rows = await self.store.list_user_conversations(
                user_id, _CONVERSATIONS_PAGE, before, before_id=before_id
            )
            ids += [row.conversation.id for row in rows]
            if len(rows) < _CONVERSATIONS_PAGE:
                return sorted(ids)
            last = rows[-1].conversation
            before = last.last_message_at if last.last_message_at is not None else last.created_at
            before_id = last.id
