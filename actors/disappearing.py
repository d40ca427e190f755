"""``set_disappearing``: a conversation's setting that makes its new messages disappear.

Run on the conversation's actor (``Messaging`` asks it, as for :mod:`actors.admin`), so it
is ordered with the conversation's other writes. Who may change it is the permission table's
``set_disappearing`` (both members of a direct conversation; a group's owner and admins, who
change its other settings). The change is stored, published (``conversation_updated``) and
announced as a system message (``disappearing_changed``) in the conversation's order. It
applies to messages sent from then on: each message's expiry is fixed when it is sent
(:mod:`actors.scheduling`), so changing the setting never shortens or lengthens the life of a
message already written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors import permissions
from actors.model import Conversation
from actors.scheduling import DISAPPEARING_SETTING, check_disappearing

if TYPE_CHECKING:
    from actors.conversation import ConversationActor

__all__ = ["set_disappearing"]


async def set_disappearing(actor: ConversationActor, user_id: str, seconds: object) -> Conversation:
    """Make new messages disappear ``seconds`` after they are sent (None or 0: never).

    Setting the value it has is no change: no event, no system message.
    """
    members = await actor.current_members()
    current = actor.current_conversation()
    permissions.require(current, members, user_id, permissions.Right.SET_DISAPPEARING)
    value = check_disappearing(seconds)
    if current.settings.get(DISAPPEARING_SETTING) == value:
        return current
    settings = {k: v for k, v in current.settings.items() if k != DISAPPEARING_SETTING}
    if value is not None:
        settings[DISAPPEARING_SETTING] = value
    updated = await actor.deps.store.update_conversation(actor.conversation_id, settings=settings)
    actor.conversation = updated
    actor.publish("conversation_updated", {"conversation": updated, "by": user_id})
    await actor.post_event("disappearing_changed", {"by": user_id, "seconds": value})
    return updated
