"""Group administration: a group's profile and settings, roles, ownership, its member list.

Each operation is a function run on the conversation's actor (``Messaging`` asks it with a
typed :class:`~actors.calls.Call`, as for the actor's own methods), so it is ordered with
every other write of the conversation and sees the actor's member list; adding, removing and
leaving are the actor's own ``add_members`` and ``remove_member``. Who may do what is
:mod:`actors.permissions`; a refusal is ``forbidden`` naming the missing right.

Each change is durable before anyone hears of it, then published on the conversation's topic
(``conversation_updated``, ``member_updated``) and recorded as a system message in the
conversation's order, so a client catching up sees it too. The owner invariant: while a
group has members, exactly one of them is its owner; ownership moves only by
:func:`transfer_ownership` (or the hand-over when the owner leaves), never by a role change.

``trusted``: the caller is a sibling service (``service:<name>``, authenticated by the gRPC
layer), which needs no role; the group rules hold (a direct conversation never changes).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, get_args

import msgspec

from actors import rules, search
from actors.errors import Reason, WhisprError
from actors.model import Conversation, Member, Role
from actors.permissions import Right, require

if TYPE_CHECKING:
    from actors.conversation import ConversationActor

__all__ = [
    "MAX_AVATAR",
    "MAX_DESCRIPTION",
    "SETTING_VALUES",
    "ConversationChanges",
    "MembersPage",
    "list_members",
    "set_role",
    "transfer_ownership",
    "update_conversation",
]

MAX_DESCRIPTION = 1000
"""The longest group description, in characters."""
MAX_AVATAR = 2048
"""The longest avatar reference (a URL or a media id), in characters."""
#: Every group setting and the values it takes (its default: ``permissions.SETTING_DEFAULTS``).
SETTING_VALUES: Final[Mapping[str, frozenset[str]]] = {
    "who_can_post": frozenset({"all", "admins"}),
    "who_can_add": frozenset({"all", "admins"}),
    # The language its messages are indexed and searched in (actors/search.py).
    search.LANGUAGE_SETTING: search.SEARCH_LANGUAGES,
}
_ROLES: Final = frozenset(get_args(Role))


class ConversationChanges(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What an update changes: a field left out stays as it is; ``null`` clears the title,
    avatar or description; ``settings`` names only the settings that change."""

    title: str | msgspec.UnsetType | None = msgspec.UNSET
    avatar: str | msgspec.UnsetType | None = msgspec.UNSET
    description: str | msgspec.UnsetType | None = msgspec.UNSET
    settings: dict[str, str] | msgspec.UnsetType = msgspec.UNSET


class MembersPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a member list, oldest member first; ``next`` is the cursor of the page
    after (None: this was the last)."""

    members: list[Member]
    next: str | None = None


# -- the profile and settings ---------------------------------------------------------------


async def update_conversation(
    actor: ConversationActor, user_id: str, changes: ConversationChanges, *, trusted: bool = False
) -> Conversation:
    """Change a group's title, avatar, description or settings.

    The title, avatar and description need ``update_info``, the settings
    ``update_settings``. Values equal to the current ones are no change: an update that
    changes nothing answers the conversation as it is, with no event and no system message.
    """
    members = await actor.current_members()
    current = actor.current_conversation()
    info = {
        name: value
        for name in ("title", "avatar", "description")
        if (value := getattr(changes, name)) is not msgspec.UNSET
    }
    settings = changes.settings
    if not info and settings is msgspec.UNSET:
        raise WhisprError(
            Reason.INVALID, "name at least one of title, avatar, description, settings"
        )
    if info:
        _authorize(current, members, user_id, Right.UPDATE_INFO, trusted)
    if settings is not msgspec.UNSET:
        _authorize(current, members, user_id, Right.UPDATE_SETTINGS, trusted)
        _check_settings(settings)
    if "title" in info:
        rules.check_title(info["title"])
    _check_optional_text(info.get("avatar"), "avatar", MAX_AVATAR)
    _check_optional_text(info.get("description"), "description", MAX_DESCRIPTION)
    store_changes: dict[str, Any] = {
        name: value for name, value in info.items() if getattr(current, name) != value
    }
    if settings is not msgspec.UNSET:
        merged = {**current.settings, **settings}
        if merged != current.settings:
            store_changes["settings"] = merged
    if not store_changes:
        return current
    updated = await actor.deps.store.update_conversation(actor.conversation_id, **store_changes)
    actor.conversation = updated
    actor.publish("conversation_updated", {"conversation": updated, "by": user_id})
    shown = {name: value for name, value in store_changes.items() if name != "settings"}
    if "settings" in store_changes:
        shown["settings"] = settings
    await actor.post_event("conversation_updated", {"by": user_id, "changes": shown})
    return updated


def _check_settings(settings: Mapping[str, Any]) -> None:
    for name, value in settings.items():
        values = SETTING_VALUES.get(name)
        if values is None:
            raise WhisprError(
                Reason.INVALID,
                f"unknown setting {name!r}; the settings are {sorted(SETTING_VALUES)}",
                field="settings",
            )
        if value not in values:
            raise WhisprError(
                Reason.INVALID, f"{name} must be one of {sorted(values)}", field="settings"
            )


def _check_optional_text(value: str | None, field: str, limit: int) -> None:
    if value is None:
        return
    if not value or len(value) > limit:
        raise WhisprError(Reason.INVALID, f"{field} must be 1 to {limit} characters", field=field)
    rules.check_text(value, field)


# -- roles and ownership --------------------------------------------------------------------


async def set_role(
    actor: ConversationActor, user_id: str, target_id: str, role: str, *, trusted: bool = False
) -> Member:
    """Make a member an admin or a plain member (``set_role``); ``owner`` transfers the
    ownership to them (``transfer_ownership``). Setting the role a member has is no change."""
    if role not in _ROLES:
        raise WhisprError(Reason.INVALID, f"role must be one of {sorted(_ROLES)}", field="role")
    if role == "owner":
        new_owner, _ = await transfer_ownership(actor, user_id, target_id, trusted=trusted)
        return new_owner
    members = await actor.current_members()
    _authorize(actor.current_conversation(), members, user_id, Right.SET_ROLE, trusted)
    target = _target(members, target_id)
    if target.role == "owner":
        raise WhisprError(
            Reason.INVALID,
            "the owner's role changes only by transfer_ownership",
            field="user_id",
        )
    if target.role == role:
        return target
    updated = await actor.deps.store.update_member(actor.conversation_id, target_id, role=role)
    actor.role_changed(updated, user_id)
    await actor.post_event("role_changed", {"by": user_id, "user_id": target_id, "role": role})
    return updated


async def transfer_ownership(
    actor: ConversationActor, user_id: str, target_id: str, *, trusted: bool = False
) -> tuple[Member, Member | None]:
    """Make ``target_id`` the owner; the former owner stays as an admin.

    Answers the new owner and the former one (None when there was none, or when the target
    already owned the group: no change).
    """
    members = await actor.current_members()
    _authorize(actor.current_conversation(), members, user_id, Right.TRANSFER_OWNERSHIP, trusted)
    target = _target(members, target_id)
    if target.role == "owner":
        return target, None
    owner = next((m for m in members.values() if m.role == "owner"), None)
    store = actor.deps.store
    # The heir first: were the node to stop between the two writes, the group would have two
    # owners for the former one to settle, rather than none.
    heir = await store.update_member(actor.conversation_id, target_id, role="owner")
    former = None
    if owner is not None:
        former = await store.update_member(actor.conversation_id, owner.user_id, role="admin")
    actor.role_changed(heir, user_id)
    if former is not None:
        actor.role_changed(former, user_id)
    await actor.post_event("ownership_transferred", {"by": user_id, "user_id": target_id})
    return heir, former


def _target(members: Mapping[str, Member], target_id: str) -> Member:
    rules.check_user_ids([target_id], "user_id")
    target = members.get(target_id)
    if target is None:
        raise WhisprError(Reason.NOT_FOUND, f"{target_id} is not a member", field="user_id")
    return target


# -- the member list ------------------------------------------------------------------------


async def list_members(
    actor: ConversationActor,
    user_id: str,
    after: str | None = None,
    limit: int = rules.MAX_PAGE,
    *,
    trusted: bool = False,
) -> MembersPage:
    """A page of the members with their roles, oldest first (``joined_at``, then user id).

    ``after`` is the previous page's ``next``: the page starts after that member's place, so
    members joining or leaving meanwhile neither shift nor repeat the rest. At most
    :data:`~actors.rules.MAX_PAGE` a page (``rules.page_limit``).
    """
    size = rules.page_limit(limit)
    members = await actor.current_members()
    if not trusted:
        require(actor.current_conversation(), members, user_id, Right.LIST_MEMBERS)
    ordered = sorted(members.values(), key=_place)
    start = 0 if after is None else bisect_right([_place(m) for m in ordered], _cursor(after))
    page = ordered[start : start + size]
    more = start + size < len(ordered)
    return MembersPage(members=page, next=_cursor_of(page[-1]) if more and page else None)


def _place(member: Member) -> tuple[float, str]:
    return (member.joined_at, member.user_id)


def _cursor_of(member: Member) -> str:
    return f"{member.joined_at!r}/{member.user_id}"


def _cursor(value: str) -> tuple[float, str]:
    joined, slash, user_id = value.partition("/")
    try:
        if not slash:
            raise ValueError(value)
        return (float(joined), user_id)
    except ValueError:
        raise WhisprError(
            Reason.INVALID, "after must be a cursor from a previous page", field="after"
        ) from None


# -- rights ---------------------------------------------------------------------------------


def _authorize(
    conversation: Conversation,
    members: Mapping[str, Member],
    user_id: str,
    right: Right,
    trusted: bool,
) -> None:
    """``right`` for a member; a trusted service needs none, but a direct conversation's
    membership and profile never change."""
    if not trusted:
        require(conversation, members, user_id, right)
    elif conversation.kind == "direct" and right is not Right.LIST_MEMBERS:
        rules.require_group(conversation)
