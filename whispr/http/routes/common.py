"""What the route modules share: the path of one conversation, refusals per kind of route,
and the WebSocket event a route counts against its rate limit."""

from __future__ import annotations

from typing import Final

from whispr.auth import Identity
from whispr.http.context import HttpContext
from whispr.http.problems import problems

__all__ = ["CONVERSATION", "MESSAGE_PROBLEMS", "READ_PROBLEMS", "WRITE_PROBLEMS", "counted"]

#: The path of one conversation, under which its members, messages and receipts are.
CONVERSATION: Final = "/conversations/{conversation_id:str}"

#: What a read of a conversation may be refused with.
READ_PROBLEMS: Final = problems(400, 401, 403, 404, 503)
#: What a change may be refused with: also a conflict, a body too large, a rate limit.
WRITE_PROBLEMS: Final = problems(400, 401, 403, 404, 409, 413, 429, 503)
#: What a message (sent or scheduled) may be refused with: also an end-to-end message's
#: devices registered again since (``stale_devices``, 410).
MESSAGE_PROBLEMS: Final = problems(400, 401, 403, 404, 409, 410, 413, 429, 503)


async def counted(ctx: HttpContext, identity: Identity, kind: str, event: str) -> None:
    """Count the operation against the rate limit of the WebSocket event it is (``kind``,
    ``event``: ``("conversation", "send_message")``), as the socket does before its handler:
    a user has one budget per limit whichever transport they use."""
    await ctx.limits.check(identity.user_id, kind, event)
