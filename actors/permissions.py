"""The permission table: which role holds which right, in a direct conversation and a group.

One table for every surface (WebSocket, gRPC, the actors' own checks): an operation names the
:class:`Right` it needs and asks :func:`require`, which refuses with ``forbidden`` naming the
right (``details["right"]``), or ``not_member`` for someone who is not in the conversation.
Other operations add a row here (a right, and the roles holding it) rather than a rule of
their own.

Roles, from most to least powerful: owner, admin, member. A group's settings move two rights
for plain members (:data:`SETTING_GRANTS`): ``who_can_post`` (``all``, the default, or
``admins``) and ``who_can_add`` (``admins``, the default, or ``all``).

| right | direct | group owner | group admin | group member |
| --- | --- | --- | --- | --- |
| ``post`` | yes | yes | yes | unless ``who_can_post`` is ``admins`` |
| ``pin`` | yes | yes | yes | no |
| ``delete_any`` (others' messages) | no | yes | yes | no |
| ``list_members`` | yes | yes | yes | yes |
| ``leave`` | no | yes (ownership is handed over) | yes | yes |
| ``add_members`` | no | yes | yes | when ``who_can_add`` is ``all`` |
| ``remove_member`` (a plain member) | no | yes | yes | no |
| ``remove_admin`` | no | yes | no | no |
| ``remove_owner`` | no | no (the owner leaves or transfers) | no | no |
| ``update_info`` (title, avatar, description) | no | yes | yes | no |
| ``update_settings`` | no | yes | yes | no |
| ``set_disappearing`` (the conversation's disappearing messages) | yes | yes | yes | no |
| ``set_role`` | no | yes | no | no |
| ``transfer_ownership`` | no | yes | no | no |
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from actors.errors import Reason, WhisprError
from actors.model import Conversation, Member, Role

__all__ = [
    "DIRECT_RIGHTS",
    "GROUP_RIGHTS",
    "SETTING_DEFAULTS",
    "SETTING_GRANTS",
    "Right",
    "allowed",
    "removal_right",
    "require",
]


class Right(enum.StrEnum):
    """What an operation needs; named in ``forbidden`` refusals."""

    POST = "post"
    PIN = "pin"
    DELETE_ANY = "delete_any"
    LIST_MEMBERS = "list_members"
    LEAVE = "leave"
    ADD_MEMBERS = "add_members"
    REMOVE_MEMBER = "remove_member"
    REMOVE_ADMIN = "remove_admin"
    REMOVE_OWNER = "remove_owner"
    UPDATE_INFO = "update_info"
    UPDATE_SETTINGS = "update_settings"
    SET_DISAPPEARING = "set_disappearing"
    SET_ROLE = "set_role"
    TRANSFER_OWNERSHIP = "transfer_ownership"


#: Both members of a direct conversation hold these; its membership and profile never change.
DIRECT_RIGHTS: Final = frozenset(
    {Right.POST, Right.PIN, Right.LIST_MEMBERS, Right.SET_DISAPPEARING}
)

_MEMBER = frozenset({Right.POST, Right.LIST_MEMBERS, Right.LEAVE})
_ADMIN = _MEMBER | {
    Right.PIN,
    Right.DELETE_ANY,
    Right.ADD_MEMBERS,
    Right.REMOVE_MEMBER,
    Right.UPDATE_INFO,
    Right.UPDATE_SETTINGS,
    Right.SET_DISAPPEARING,
}
_OWNER = _ADMIN | {Right.REMOVE_ADMIN, Right.SET_ROLE, Right.TRANSFER_OWNERSHIP}

#: A group's rights by role, before its settings move any (:data:`SETTING_GRANTS`).
GROUP_RIGHTS: Final[Mapping[Role, frozenset[Right]]] = MappingProxyType(
    {"owner": _OWNER, "admin": _ADMIN, "member": _MEMBER}
)

#: A group setting that decides whether plain members hold a right: the right, and the value
#: of the setting that grants it. Owners and admins hold these rights whatever the setting.
SETTING_GRANTS: Final[Mapping[str, tuple[Right, str]]] = MappingProxyType(
    {"who_can_post": (Right.POST, "all"), "who_can_add": (Right.ADD_MEMBERS, "all")}
)

#: Each group setting's value when the group never set it.
SETTING_DEFAULTS: Final[Mapping[str, str]] = MappingProxyType(
    {"who_can_post": "all", "who_can_add": "admins"}
)


def allowed(conversation: Conversation, role: Role, right: Right) -> bool:
    """Whether a member with ``role`` holds ``right`` in ``conversation`` now."""
    if conversation.kind == "direct":
        return right in DIRECT_RIGHTS
    if role != "member":
        return right in GROUP_RIGHTS[role]
    for setting, (granted, value) in SETTING_GRANTS.items():
        if granted is right:
            current: object = conversation.settings.get(setting, SETTING_DEFAULTS[setting])
            return current == value
    return right in GROUP_RIGHTS["member"]


def require(
    conversation: Conversation, members: Mapping[str, Member], user_id: str, right: Right
) -> Member:
    """The member record of ``user_id`` if they hold ``right``: else ``not_member`` or
    ``forbidden`` naming the right."""
    member = members.get(user_id)
    if member is None:
        raise WhisprError(Reason.NOT_MEMBER, "you are not a member of this conversation")
    if not allowed(conversation, member.role, right):
        raise WhisprError(
            Reason.FORBIDDEN,
            f"this needs the right {right.value!r}, held by {_holders(conversation, right)} "
            f"in {'a direct conversation' if conversation.kind == 'direct' else 'this group'}",
            right=right.value,
        )
    return member


def _holders(conversation: Conversation, right: Right) -> str:
    """Who holds ``right`` here, for people: ``the owner and admins``, ``nobody``."""
    if conversation.kind == "direct":
        return "both members" if right in DIRECT_RIGHTS else "nobody"
    names = {"owner": "the owner", "admin": "admins", "member": "members"}
    roles: tuple[Role, ...] = ("owner", "admin", "member")
    held = [names[role] for role in roles if allowed(conversation, role, right)]
    if not held:
        return "nobody"
    return held[0] if len(held) == 1 else ", ".join(held[:-1]) + " and " + held[-1]


def removal_right(target: Role) -> Right:
    """The right needed to remove a member with role ``target`` (oneself: :attr:`Right.LEAVE`)."""
    if target == "owner":
        return Right.REMOVE_OWNER
    return Right.REMOVE_ADMIN if target == "admin" else Right.REMOVE_MEMBER
