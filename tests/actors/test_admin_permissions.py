"""Group administration against a model of who may do what (hypothesis stateful testing).

Every role tries every operation (add, remove, leave, set a role, transfer the ownership,
change the title and each setting, post, list the members) in random order. The model
says, without reading ``actors/permissions.py``, who may do what; after every step the
store must hold exactly the model's members, roles, settings, title and messages (so no
refused operation changed anything and every allowed one changed what it should), and a
group with members has exactly one owner.

Runs on the embedded store so that hundreds of steps stay fast; the store contract suite
checks that PostgreSQL behaves the same, and tests/gateway/test_admin.py runs every
operation on both stores over the socket.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from actors.admin import ConversationChanges
from actors.conversation import Draft
from actors.errors import Reason, WhisprError
from actors.model import Conversation
from actors.ports import Store
from tests.actors.conftest import Stack, build_stack
from whispr.store.sqlite import SqliteStore

USERS = ["owner", "ann", "ben", "cat", "dan"]
ROLES = ["owner", "admin", "member"]
SETTINGS = {"who_can_post": ["all", "admins"], "who_can_add": ["all", "admins"]}
TITLES = ["one", "two"]


@dataclass
class Model:
    """The group as the rules say it must be."""

    #: Every role from the start (two admins, so that one can try to remove the other).
    roles: dict[str, str] = field(
        default_factory=lambda: {"owner": "owner", "ann": "admin", "ben": "admin", "cat": "member"}
    )
    #: When each member joined, as an order: (tick, user id); the first members share tick 0.
    joined: dict[str, tuple[int, str]] = field(
        default_factory=lambda: {u: (0, u) for u in ("owner", "ann", "ben", "cat")}
    )
    settings: dict[str, str] = field(default_factory=lambda: {"who_can_post": "all"})
    title: str | None = "G"
    messages: int = 2  # the two role changes
    tick: int = 0

    def may(self, user: str, operation: str) -> bool:
        """Whether a member may do ``operation`` (the group's rules, written out)."""
        role = self.roles[user]
        if role == "owner":
            return True
        if operation == "post":
            return role == "admin" or self.settings.get("who_can_post", "all") == "all"
        if operation == "add":
            return role == "admin" or self.settings.get("who_can_add", "admins") == "all"
        if operation in ("update_info", "update_settings", "remove_member"):
            return role == "admin"
        return False  # remove_admin, set_role, transfer_ownership: the owner's alone

    def remove(self, user: str) -> None:
        was_owner = self.roles.pop(user) == "owner"
        del self.joined[user]
        self.messages += 1  # member_removed or member_left
        if was_owner and self.roles:
            heir = min(self.roles, key=lambda u: (self.roles[u] != "admin", self.joined[u]))
            self.roles[heir] = "owner"
            self.messages += 1  # ownership_transferred


class AdminMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = tempfile.TemporaryDirectory()
        self.store = SqliteStore(str(Path(self.folder.name) / "admin.db"))
        self.run(self.store.open())
        self.run(self.store.migrate())
        self.stack: Stack = self.run(build_stack(self.store))
        messaging = self.stack.messaging
        self.group: Conversation = self.run(
            messaging.create_group("owner", "G", ["ann", "ben", "cat"])
        )
        for admin in ("ann", "ben"):
            self.run(messaging.set_role("owner", self.group.id, admin, "admin"))
        self.model = Model()
        self.sent = 0

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def outcome(self, coroutine: Any) -> Any:
        try:
            return self.run(coroutine)
        except WhisprError as error:
            refused = error
        if refused.reason is Reason.FORBIDDEN:
            assert refused.details.get("right"), refused  # the missing right is named
        return refused.reason

    def teardown(self) -> None:
        self.stack.supervisor.stop(block=False)
        self.run(self.stack.supervisor.wait_exit())
        self.run(self.store.close())
        self.loop.close()
        self.folder.cleanup()

    def refusal(self, by: str, operation: str) -> Reason | None:
        """The refusal the rules give ``by`` for ``operation``, or None if allowed."""
        if by not in self.model.roles:
            return Reason.NOT_MEMBER
        return None if self.model.may(by, operation) else Reason.FORBIDDEN

    # -- membership ---------------------------------------------------------------------

    @rule(by=st.sampled_from(USERS), user=st.sampled_from(USERS))
    def add(self, by: str, user: str) -> None:
        got = self.outcome(self.stack.messaging.add_members(by, self.group.id, [user]))
        expected = self.refusal(by, "add")
        if expected is not None:
            assert got is expected
        elif user in self.model.roles:
            assert got == []
        else:
            self.model.tick += 1
            self.model.roles[user] = "member"
            self.model.joined[user] = (self.model.tick, user)
            self.model.messages += 1
            assert [m.user_id for m in got] == [user]

    @rule(by=st.sampled_from(USERS), user=st.sampled_from(USERS))
    def remove(self, by: str, user: str) -> None:
        got = self.outcome(self.stack.messaging.remove_member(by, self.group.id, user))
        if by not in self.model.roles:
            assert got is Reason.NOT_MEMBER
            return
        if user not in self.model.roles:
            assert got is Reason.NOT_FOUND
            return
        target = self.model.roles[user]
        if user == by:
            allowed = True  # leaving
        elif target == "owner":
            allowed = False  # nobody removes the owner
        else:
            allowed = self.model.may(by, "remove_member" if target == "member" else "remove_admin")
        if not allowed:
            assert got is Reason.FORBIDDEN
            return
        assert got is None
        self.model.remove(user)

    @rule(user=st.sampled_from(USERS))
    def leave(self, user: str) -> None:
        got = self.outcome(self.stack.messaging.leave(user, self.group.id))
        if user not in self.model.roles:
            assert got is Reason.NOT_MEMBER
            return
        assert got is None
        self.model.remove(user)

    # -- roles ----------------------------------------------------------------------------

    @rule(by=st.sampled_from(USERS), user=st.sampled_from(USERS), role=st.sampled_from(ROLES))
    def set_role(self, by: str, user: str, role: str) -> None:
        got = self.outcome(self.stack.messaging.set_role(by, self.group.id, user, role))
        if role == "owner":  # a transfer of the ownership
            self.transferred(by, user, got if isinstance(got, Reason) else (got, None))
            return
        expected = self.refusal(by, "set_role")
        if expected is not None:
            assert got is expected
        elif user not in self.model.roles:
            assert got is Reason.NOT_FOUND
        elif self.model.roles[user] == "owner":
            assert got is Reason.INVALID  # the owner's role moves only by a transfer
        else:
            if self.model.roles[user] != role:
                self.model.roles[user] = role
                self.model.messages += 1
            assert got.role == role

    @rule(by=st.sampled_from(USERS), user=st.sampled_from(USERS))
    def transfer(self, by: str, user: str) -> None:
        got = self.outcome(self.stack.messaging.transfer_ownership(by, self.group.id, user))
        self.transferred(by, user, got)

    def transferred(self, by: str, user: str, got: Any) -> None:
        """Check a transfer's answer (the new owner, the former one or None) and apply it."""
        expected = self.refusal(by, "transfer_ownership")
        if expected is not None:
            assert got is expected
        elif user not in self.model.roles:
            assert got is Reason.NOT_FOUND
        elif user == by:
            assert (got[0].user_id, got[1]) == (by, None)  # already the owner: no change
        else:
            self.model.roles[user], self.model.roles[by] = "owner", "admin"
            self.model.messages += 1
            assert (got[0].user_id, got[0].role) == (user, "owner")
            if got[1] is not None:  # set_role answers the new owner alone
                assert (got[1].user_id, got[1].role) == (by, "admin")

    # -- the group's profile and settings -----------------------------------------------------

    @rule(by=st.sampled_from(USERS), title=st.sampled_from(TITLES))
    def rename(self, by: str, title: str) -> None:
        got = self.outcome(
            self.stack.messaging.update_conversation(
                by, self.group.id, ConversationChanges(title=title)
            )
        )
        expected = self.refusal(by, "update_info")
        if expected is not None:
            assert got is expected
            return
        if self.model.title != title:
            self.model.title = title
            self.model.messages += 1
        assert got.title == title

    @rule(
        by=st.sampled_from(USERS),
        name=st.sampled_from(sorted(SETTINGS)),
        pick=st.integers(0, 1),
    )
    def configure(self, by: str, name: str, pick: int) -> None:
        value = SETTINGS[name][pick]
        got = self.outcome(
            self.stack.messaging.update_conversation(
                by, self.group.id, ConversationChanges(settings={name: value})
            )
        )
        expected = self.refusal(by, "update_settings")
        if expected is not None:
            assert got is expected
            return
        if self.model.settings.get(name) != value:
            self.model.settings[name] = value
            self.model.messages += 1
        assert got.settings == self.model.settings

    # -- using the group ----------------------------------------------------------------------

    @rule(by=st.sampled_from(USERS))
    def post(self, by: str) -> None:
        self.sent += 1
        draft = Draft(client_id=f"m{self.sent}", content="hello")
        got = self.outcome(self.stack.messaging.send(by, self.group.id, draft))
        expected = self.refusal(by, "post")
        if expected is not None:
            assert got is expected
        else:
            self.model.messages += 1
            assert got.sender_id == by

    @rule(by=st.sampled_from(USERS), limit=st.integers(1, 3))
    def list_members(self, by: str, limit: int) -> None:
        if by not in self.model.roles:
            got = self.outcome(self.stack.messaging.list_members(by, self.group.id, limit=limit))
            assert got is Reason.NOT_MEMBER
            return
        seen: list[tuple[str, str]] = []
        after: str | None = None
        while True:
            page = self.run(
                self.stack.messaging.list_members(by, self.group.id, after=after, limit=limit)
            )
            assert len(page.members) <= limit
            seen += [(m.user_id, m.role) for m in page.members]
            if page.next is None:
                break
            after = page.next
        in_order = sorted(self.model.roles, key=lambda u: self.model.joined[u])
        assert seen == [(u, self.model.roles[u]) for u in in_order]

    # -- what must always hold ----------------------------------------------------------------

    @invariant()
    def the_store_holds_the_model(self) -> None:
        members = self.run(self.store.list_members(self.group.id))
        roles = {m.user_id: m.role for m in members}
        assert roles == self.model.roles
        if roles:
            assert list(roles.values()).count("owner") == 1
        conversation = self.run(self.store.get_conversation(self.group.id))
        assert conversation is not None
        assert conversation.title == self.model.title
        assert conversation.settings == self.model.settings
        assert self.run(self.store.last_seq(self.group.id)) == self.model.messages


AdminMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestAdminModel = AdminMachine.TestCase


# -- the table's edges, one by one --------------------------------------------------------------


async def _refusal(coroutine: Any) -> WhisprError:
    with pytest.raises(WhisprError) as caught:
        await coroutine
    return caught.value


async def test_who_can_post_admins_lets_only_the_owner_and_admins_post(
    stack: Stack, store: Store
) -> None:
    m = stack.messaging
    group = await m.create_group("olga", "news", ["adam", "mia"])
    await m.set_role("olga", group.id, "adam", "admin")
    await m.update_conversation(
        "adam", group.id, ConversationChanges(settings={"who_can_post": "admins"})
    )
    refused = await _refusal(m.send("mia", group.id, Draft(client_id="c1", content="hi")))
    assert (refused.reason, refused.details) == (Reason.FORBIDDEN, {"right": "post"})
    for sender in ("olga", "adam"):
        sent = await m.send(sender, group.id, Draft(client_id=f"c-{sender}", content="hi"))
        assert sent.sender_id == sender
    # Back to everyone: the member posts again.
    await m.update_conversation(
        "olga", group.id, ConversationChanges(settings={"who_can_post": "all"})
    )
    assert (await m.send("mia", group.id, Draft(client_id="c2", content="hi"))).sender_id == "mia"
    stored = await store.page_messages(group.id, after_seq=0, limit=50)
    assert [msg.sender_id for msg in stored if msg.kind == "text"] == ["olga", "adam", "mia"]


async def test_a_direct_conversation_has_no_administration(stack: Stack) -> None:
    m = stack.messaging
    direct = await m.direct("ada", "bob")
    attempts = {
        "add_members": m.add_members("ada", direct.id, ["cy"]),
        "remove_member": m.remove_member("ada", direct.id, "bob"),
        "leave": m.leave("ada", direct.id),
        "set_role": m.set_role("ada", direct.id, "bob", "admin"),
        "transfer_ownership": m.transfer_ownership("ada", direct.id, "bob"),
        "update_info": m.update_conversation("ada", direct.id, ConversationChanges(title="x")),
    }
    for right, attempt in attempts.items():
        refused = await _refusal(attempt)
        assert refused.reason is Reason.FORBIDDEN
        assert refused.details == {"right": right}
    page = await m.list_members("bob", direct.id)
    assert sorted(member.user_id for member in page.members) == ["ada", "bob"]


async def test_updates_are_checked_and_an_update_that_changes_nothing_is_silent(
    stack: Stack, store: Store
) -> None:
    m = stack.messaging
    group = await m.create_group("olga", "news", ["mia"])
    for changes, field_name in (
        (ConversationChanges(settings={"who_can_dance": "all"}), "settings"),
        (ConversationChanges(settings={"who_can_post": "nobody"}), "settings"),
        (ConversationChanges(title=" "), "title"),
        (ConversationChanges(description="x" * 1001), "description"),
        (ConversationChanges(avatar=""), "avatar"),
        (ConversationChanges(description="a\x00b"), "description"),
    ):
        refused = await _refusal(m.update_conversation("olga", group.id, changes))
        assert (refused.reason, refused.details.get("field")) == (Reason.INVALID, field_name)
    assert (
        await _refusal(m.update_conversation("olga", group.id, ConversationChanges()))
    ).reason is Reason.INVALID
    changed = await m.update_conversation(
        "olga", group.id, ConversationChanges(description="d", avatar="media:1")
    )
    assert (changed.description, changed.avatar, changed.title) == ("d", "media:1", "news")
    head = await store.last_seq(group.id)
    same = await m.update_conversation("olga", group.id, ConversationChanges(description="d"))
    assert same == changed
    assert await store.last_seq(group.id) == head  # no system message for no change
    cleared = await m.update_conversation("olga", group.id, ConversationChanges(description=None))
    assert cleared.description is None
    [event] = await store.page_messages(group.id, after_seq=head, limit=5)
    assert event.metadata == {
        "event": "conversation_updated",
        "by": "olga",
        "changes": {"description": None},
    }


async def test_a_bad_cursor_is_refused_naming_it(stack: Stack) -> None:
    group = await stack.messaging.create_group("olga", "news", ["mia"])
    refused = await _refusal(stack.messaging.list_members("olga", group.id, after="nope"))
    assert (refused.reason, refused.details) == (Reason.INVALID, {"field": "after"})
