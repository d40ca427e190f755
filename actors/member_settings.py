"""A member's own settings of one conversation: mute, notification level, archived, pin order.

Each member sets their own, whatever their role (the rules table in ``actors/rules.py``): a
setting changes what the member is pushed and how their clients list the conversation, never
what the others see. They live on the membership row (``members``), so leaving a conversation
forgets them and a push decision (:func:`actors.rules.push_recipients`) reads them with the
member list the conversation's actor already holds.

- ``muted_until``: no push before that time; ``"forever"`` until unmuted (stored as
  :data:`MUTED_FOREVER`, far enough that no comparison with a clock ever passes it); ``null``
  unmutes.
- ``notifications``: ``all``, ``mentions`` (pushed only for messages naming the member in
  ``metadata.mentions``, see ``actors/mentions.py``) or ``none``.
- ``archived``: the member's clients list the conversation apart (nothing else changes).
- ``pin_order``: its place among the user's pinned conversations, lower first; ``null`` unpins.

A change is answered with the member's :class:`MemberSettings` and published to the user's own
topic (``member_settings_updated`` on ``user:<id>``), so their other devices follow.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

from actors.errors import Reason, WhisprError
from actors.model import Member, Notifications

__all__ = [
    "MAX_PIN_ORDER",
    "MUTED_FOREVER",
    "MemberSettings",
    "SettingsChange",
]

MUTED_FOREVER: Final = 253_402_300_799.0
"""``muted_until`` of a conversation muted until unmuted: 9999-12-31T23:59:59Z, the latest time
every client's date type and both stores hold (a JSON number, unlike infinity)."""
MAX_PIN_ORDER: Final = 2**31 - 1
"""The largest ``pin_order`` (the stores keep it as a 32-bit integer)."""

Forever = Literal["forever"]


class SettingsChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``update_member_settings``: each field given is set, the others stay as they are."""

    muted_until: float | Forever | msgspec.UnsetType | None = msgspec.UNSET
    notifications: Notifications | msgspec.UnsetType = msgspec.UNSET
    archived: bool | msgspec.UnsetType = msgspec.UNSET
    pin_order: int | msgspec.UnsetType | None = msgspec.UNSET

    def store_changes(self) -> dict[str, Any]:
        """The change as ``Store.update_member`` keywords; refuses (``invalid``) a bad value
        or an empty change."""
        changes: dict[str, Any] = {}
        muted = self.muted_until
        if muted == "forever":
            changes["muted_until"] = MUTED_FOREVER
        elif muted is None or isinstance(muted, float | int):
            if muted is not None and not 0 <= muted <= MUTED_FOREVER:
                raise WhisprError(
                    Reason.INVALID,
                    f"muted_until must be a time from 0 to {MUTED_FOREVER:.0f}, 'forever' or null",
                    field="muted_until",
                )
            changes["muted_until"] = None if muted is None else float(muted)
        if self.notifications is not msgspec.UNSET:
            changes["notifications"] = self.notifications
        if self.archived is not msgspec.UNSET:
            changes["archived"] = self.archived
        pin_order = self.pin_order
        if pin_order is not msgspec.UNSET:
            if pin_order is not None and not 0 <= pin_order <= MAX_PIN_ORDER:
                raise WhisprError(
                    Reason.INVALID,
                    f"pin_order must be an integer from 0 to {MAX_PIN_ORDER}, or null",
                    field="pin_order",
                )
            changes["pin_order"] = pin_order
        if not changes:
            raise WhisprError(
                Reason.INVALID,
                "give at least one of muted_until, notifications, archived, pin_order",
            )
        return changes


class MemberSettings(msgspec.Struct, frozen=True, kw_only=True):
    """One member's settings of one conversation, as replies and events carry them."""

    conversation_id: str
    user_id: str
    #: A time (seconds since the epoch), ``"forever"``, or None when not muted.
    muted_until: float | Forever | None
    notifications: Notifications
    archived: bool
    pin_order: int | None

    @classmethod
    def of(cls, member: Member) -> MemberSettings:
        muted = member.muted_until
        return cls(
            conversation_id=member.conversation_id,
            user_id=member.user_id,
            muted_until="forever" if muted is not None and muted >= MUTED_FOREVER else muted,
            notifications=member.notifications,
            archived=member.archived,
            pin_order=member.pin_order,
        )
