"""The ``whispr.search.v1.MessageSearch`` servicer: search and export for sibling services.

The calls mirror ``search`` on ``conversation:<id>`` and ``user:<id>``
(``whispr/gateway/channels/search.py``) and the ``whispr export`` command, through the same
:class:`~actors.search_reads.SearchReads`. Authentication, status codes, audit records and
metrics are the messaging API's (:func:`~whispr.grpc.service.rpc`,
:func:`~whispr.grpc.service.stream_rpc`).

``ExportHistory`` streams one JSON line per message as the store's pages come: the node
holds one page, and gRPC's flow control holds the reader's pace, whatever the export's size.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

from actors import rules
from actors.errors import Reason, WhisprError
from actors.model import MessageKind
from actors.search import MessageFilters, SearchPage
from actors.search_reads import SearchReads, json_line
from whispr.grpc.convert import message_to_pb
from whispr.grpc.gen.whispr.search.v1 import search_pb2 as pb
from whispr.grpc.gen.whispr.search.v1 import search_pb2_grpc as pb_grpc
from whispr.grpc.service import ServedOverMessaging, required, rpc, stream_rpc

__all__ = ["SEARCH_SERVICE", "MessageSearchServicer"]

SEARCH_SERVICE: Final = pb.DESCRIPTOR.services_by_name["MessageSearch"].full_name
_KINDS: Final[dict[int, MessageKind]] = {
    pb.KIND_TEXT: "text",
    pb.KIND_MEDIA: "media",
    pb.KIND_SYSTEM: "system",
}
_DEFAULT_LIMIT: Final = 20


class MessageSearchServicer(ServedOverMessaging, pb_grpc.MessageSearchServicer):
    """The search and export API over one node's :class:`Messaging`."""

    @property
    def reads(self) -> SearchReads:
        return self.messaging.searches

    @rpc("Search")
    async def Search(self, caller: str, request: pb.SearchRequest) -> pb.SearchResponse:
        user_id = required(request.user_id, "user_id")
        if not 0 <= request.limit <= rules.MAX_PAGE:
            raise WhisprError(
                Reason.INVALID, f"limit must be 1 to {rules.MAX_PAGE} (0: 20)", field="limit"
            )
        kind = _KINDS.get(request.kind)
        if request.kind and kind is None:
            raise WhisprError(Reason.INVALID, "unknown kind", field="kind")
        filters = MessageFilters(
            sender_id=request.sender_id or None,
            kind=kind,
            since=request.since if request.HasField("since") else None,
            until=request.until if request.HasField("until") else None,
        )
        page = await self.reads.search(
            user_id,
            request.query,
            conversation_id=request.conversation_id or None,
            filters=filters,
            has_attachment=request.has_attachment if request.HasField("has_attachment") else None,
            limit=request.limit or _DEFAULT_LIMIT,
            cursor=request.cursor or None,
        )
        return _page_to_pb(page)

    @stream_rpc("ExportHistory")
    async def ExportHistory(
        self, caller: str, request: pb.ExportHistoryRequest
    ) -> AsyncIterator[pb.ExportLine]:
        user_id = request.user_id or None
        conversation_id = request.conversation_id or None
        if user_id is None and conversation_id is None:
            raise WhisprError(
                Reason.INVALID, "name a user_id or a conversation_id", field="conversation_id"
            )
        if user_id is not None:
            rules.check_user_ids([user_id], "user_id")
        plan = await self.reads.plan(user_id, conversation_id)
        exported = 0
        async for message in self.reads.export(user_id, plan):
            exported += 1
            yield pb.ExportLine(
                json=json_line(message).decode(), exported=exported, total=plan.total
            )


def _page_to_pb(page: SearchPage) -> pb.SearchResponse:
    return pb.SearchResponse(
        hits=[
            pb.SearchHit(
                message=message_to_pb(hit.message),
                rank=hit.rank,
                snippet=hit.snippet,
                highlights=[pb.Highlight(start=s, end=e) for s, e in hit.highlights],
            )
            for hit in page.hits
        ],
        cursor=page.cursor or "",
    )
