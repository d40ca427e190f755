"""A conversation against a simple model: members, roles, messages, edits, deletes,
reactions and read cursors, driven by random steps (hypothesis stateful testing).

Runs on the embedded store so that hundreds of steps stay fast; the store
contract suite checks that PostgreSQL behaves the same.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from actors.conversation import Draft
from actors.errors import Reason, WhisprError
from tests.actors.conftest import Stack, build_stack
from whispr.store.sqlite import SqliteStore

USERS = ["owner", "ann", "ben", "cat"]
EMOJI = ["👍", "🎉"]


@dataclass
class Model:
    roles: dict[str, str] = field(default_factory=lambda: {"owner": "owner", "ann": "member"})
    # seq -> [sender, content, deleted, {emoji: set(users)}]
    messages: dict[int, list[Any]] = field(default_factory=dict)
    read: dict[str, int] = field(default_factory=dict)

    def append(self, sender: str, content: str) -> None:
        self.messages[len(self.messages) + 1] = [sender, content, False, {}]


class ConversationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = tempfile.TemporaryDirectory()
        self.store = SqliteStore(str(Path(self.folder.name) / "model.db"))
        self.run(self.store.open())
        self.run(self.store.migrate())
        self.stack: Stack = self.run(build_stack(self.store))
        self.conversation = self.run(self.stack.messaging.create_group("owner", "M", ["ann"]))
        self.model = Model()
        self.counter = 0

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def outcome(self, coroutine: Any) -> Any:
        try:
            return self.run(coroutine)
        except WhisprError as error:
            return error.reason

    def teardown(self) -> None:
        self.stack.supervisor.stop(block=False)
        self.run(self.stack.supervisor.wait_exit())
        self.run(self.store.close())
        self.loop.close()
        self.folder.cleanup()

    @rule(user=st.sampled_from(USERS))
    def send(self, user: str) -> None:
        self.counter += 1
        content = f"m{self.counter}"
        got = self.outcome(
            self.stack.messaging.send(
                user, self.conversation.id, Draft(client_id=content, content=content)
            )
        )
        if user in self.model.roles:
            self.model.append(user, content)
            assert got.seq == len(self.model.messages)
        else:
            assert got is Reason.NOT_MEMBER

    @rule(user=st.sampled_from(USERS), pick=st.integers(0, 30))
    def edit(self, user: str, pick: int) -> None:
        seq = pick % (len(self.model.messages) + 1) + 1
        got = self.outcome(self.stack.messaging.edit(user, self.conversation.id, seq, "edited"))
        entry = self.model.messages.get(seq)
        if user not in self.model.roles:
            assert got is Reason.NOT_MEMBER
        elif entry is None:
            assert got is Reason.NOT_FOUND
        elif entry[0] != user:
            assert got in (Reason.FORBIDDEN, Reason.INVALID)  # system messages: invalid
        elif entry[2]:
            assert got is Reason.INVALID
        else:
            entry[1] = "edited"
            assert got.content == "edited"

    @rule(user=st.sampled_from(USERS), pick=st.integers(0, 30))
    def delete(self, user: str, pick: int) -> None:
        seq = pick % (len(self.model.messages) + 1) + 1
        got = self.outcome(self.stack.messaging.delete(user, self.conversation.id, seq))
        entry = self.model.messages.get(seq)
        role = self.model.roles.get(user)
        if role is None:
            assert got is Reason.NOT_MEMBER
        elif entry is None:
            assert got is Reason.NOT_FOUND
        elif entry[0] != user and role not in ("owner", "admin"):
            assert got is Reason.FORBIDDEN
        elif entry[0] == "system":
            assert got is Reason.INVALID
        else:
            entry[1], entry[2], entry[3] = "", True, {}
            assert got.deleted

    @rule(
        user=st.sampled_from(USERS),
        pick=st.integers(0, 30),
        emoji=st.sampled_from(EMOJI),
        add=st.booleans(),
    )
    def react(self, user: str, pick: int, emoji: str, add: bool) -> None:
        seq = pick % (len(self.model.messages) + 1) + 1
        got = self.outcome(
            self.stack.messaging.react(user, self.conversation.id, seq, emoji, add=add)
        )
        entry = self.model.messages.get(seq)
        if user not in self.model.roles:
            assert got is Reason.NOT_MEMBER
        elif entry is None:
            assert got is Reason.NOT_FOUND
        elif entry[2]:
            assert got is Reason.INVALID
        else:
            users = entry[3].setdefault(emoji, set())
            if add:
                users.add(user)
            else:
                users.discard(user)
            if not users:
                del entry[3][emoji]
            assert {e: set(u) for e, u in got.reactions.items()} == entry[3]

    @rule(by=st.sampled_from(USERS), user=st.sampled_from(USERS))
    def add_member(self, by: str, user: str) -> None:
        got = self.outcome(self.stack.messaging.add_members(by, self.conversation.id, [user]))
        role = self.model.roles.get(by)
        if role is None:
            assert got is Reason.NOT_MEMBER
        elif role not in ("owner", "admin"):
            assert got is Reason.FORBIDDEN
        elif user in self.model.roles:
            assert got == []
        else:
            self.model.roles[user] = "member"
            self.model.append("system", "")
            assert [m.user_id for m in got] == [user]

    @rule(by=st.sampled_from(USERS), user=st.sampled_from(USERS[1:]))
    def remove_member(self, by: str, user: str) -> None:
        got = self.outcome(self.stack.messaging.remove_member(by, self.conversation.id, user))
        by_role, target_role = self.model.roles.get(by), self.model.roles.get(user)
        if by_role is None:
            assert got is Reason.NOT_MEMBER
        elif target_role is None:
            assert got is Reason.NOT_FOUND
        elif user != by and not (
            by_role == "owner" or (by_role == "admin" and target_role == "member")
        ):
            assert got is Reason.FORBIDDEN
        else:
            del self.model.roles[user]
            self.model.append("system", "")
            assert got is None

    @rule(user=st.sampled_from(USERS), seq=st.integers(0, 40))
    def mark_read(self, user: str, seq: int) -> None:
        got = self.outcome(self.stack.messaging.mark_read(user, self.conversation.id, seq))
        if user not in self.model.roles:
            assert got is Reason.NOT_MEMBER
        else:
            expected = max(self.model.read.get(user, 0), min(seq, len(self.model.messages)))
            self.model.read[user] = expected
            assert got == expected

    @invariant()
    def history_matches_the_model(self) -> None:
        stored = self.run(
            self.stack.store.page_messages(self.conversation.id, after_seq=0, limit=200)
        )
        assert [m.seq for m in stored] == list(self.model.messages)
        for message in stored:
            sender, content, deleted, reactions = self.model.messages[message.seq]
            assert message.sender_id == sender
            assert message.deleted == deleted
            if sender != "system":
                assert message.content == content
            assert {e: set(u) for e, u in message.reactions.items()} == reactions
        members = self.run(self.stack.store.list_members(self.conversation.id))
        assert {m.user_id: m.role for m in members} == self.model.roles


ConversationMachine.TestCase.settings = settings(
    max_examples=20, stateful_step_count=25, deadline=None
)
TestConversationModel = ConversationMachine.TestCase
