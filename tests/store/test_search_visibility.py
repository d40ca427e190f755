"""A property of search on both stores: whatever happens to memberships and messages, a user
finds exactly what a model of the visibility rule says (``actors/search.py``): the messages
holding every word asked, in the conversations the user is a member of now, except
tombstones and the messages the user deleted for themselves; paging by position loses and
repeats nothing."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.model import Conversation, Member, Message
from actors.ports import Store
from actors.search import SearchPosition, SearchQuery
from tests.store.test_contract import NOW

USERS = ("ann", "ben", "cat", "dan")
WORDS = ("apple", "berry", "cherry")
CONVERSATIONS = 3
_runs = itertools.count()

CONTENTS = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join)
SEND = st.tuples(st.just("send"), st.integers(0, CONVERSATIONS - 1), CONTENTS)
OPERATIONS = st.lists(
    st.one_of(
        SEND,
        SEND,  # as often as the rest together: there is something to find, hide, delete
        SEND,
        st.tuples(st.just("add"), st.integers(0, CONVERSATIONS - 1), st.sampled_from(USERS)),
        st.tuples(st.just("remove"), st.integers(0, CONVERSATIONS - 1), st.sampled_from(USERS)),
        st.tuples(st.just("delete"), st.integers(0, CONVERSATIONS - 1), st.integers(1, 4)),
        st.tuples(st.just("edit"), st.integers(0, CONVERSATIONS - 1), st.integers(1, 4), CONTENTS),
        st.tuples(
            st.just("hide"),
            st.integers(0, CONVERSATIONS - 1),
            st.integers(1, 4),
            st.sampled_from(USERS),
        ),
    ),
    min_size=8,
    max_size=40,
)


@dataclass
class Model:
    """What each user should find: members now, each conversation's live messages, hidden."""

    members: list[set[str]]
    messages: list[dict[int, str]] = field(default_factory=lambda: [{} for _ in range(3)])
    hidden: set[tuple[int, int, str]] = field(default_factory=set)

    def expected(self, user: str, words: str) -> set[tuple[int, int]]:
        wanted = set(words.split())
        return {
            (c, seq)
            for c in range(CONVERSATIONS)
            if user in self.members[c]
            for seq, content in self.messages[c].items()
            if wanted <= set(content.split()) and (c, seq, user) not in self.hidden
        }


async def _everything(store: Store, user: str, words: str) -> list[tuple[str, int]]:
    hits: list[tuple[str, int]] = []
    after = None
    while True:
        page = await store.search_messages(
            SearchQuery(viewer_id=user, text=words, limit=3, after=after)
        )
        hits += [(h.message.conversation_id, h.message.seq) for h in page]
        if len(page) < 3:
            return hits
        last = page[-1]
        after = SearchPosition(last.rank, last.message.conversation_id, last.message.seq)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    first_members=st.lists(
        st.sets(st.sampled_from(USERS), min_size=1), min_size=CONVERSATIONS, max_size=CONVERSATIONS
    ),
    operations=OPERATIONS,
)
async def test_a_user_finds_what_the_visibility_model_says(
    store: Store, first_members: list[set[str]], operations: list[tuple[object, ...]]
) -> None:
    run = next(_runs)
    ids = [f"v{run}-{c}" for c in range(CONVERSATIONS)]
    # Each example's own users: the store keeps the conversations of earlier examples.
    name = {u: f"{u}-{run}" for u in USERS}
    model = Model(members=[set(m) for m in first_members])
    last_seq = [0] * CONVERSATIONS
    for c, members in enumerate(first_members):
        await store.create_conversation(
            Conversation(id=ids[c], kind="group", created_by=min(members), created_at=NOW),
            [
                Member(conversation_id=ids[c], user_id=name[u], role="member", joined_at=NOW)
                for u in sorted(members)
            ],
        )
    for operation in operations:
        kind, c = operation[0], int(operation[1])  # type: ignore[call-overload]
        if kind == "send":
            last_seq[c] += 1
            seq, content = last_seq[c], str(operation[2])
            message = Message(
                conversation_id=ids[c],
                seq=seq,
                id=f"{ids[c]}-{seq}",
                client_id=f"c{seq}",
                sender_id=name[USERS[0]],
                kind="text",
                content=content,
                created_at=NOW + seq,
            )
            await store.insert_messages([message])
            model.messages[c][seq] = content
        elif kind == "add":
            user = str(operation[2])
            await store.add_members(
                [Member(conversation_id=ids[c], user_id=name[user], role="member", joined_at=NOW)]
            )
            model.members[c].add(user)
        elif kind == "remove":
            user = str(operation[2])
            if user in model.members[c]:
                await store.remove_member(ids[c], name[user])
                model.members[c].discard(user)
        elif kind == "delete":
            seq = int(operation[2])  # type: ignore[call-overload]
            if seq <= last_seq[c]:
                await store.delete_message(ids[c], seq)
                model.messages[c].pop(seq, None)
        elif kind == "edit":
            seq, content = int(operation[2]), str(operation[3])  # type: ignore[call-overload]
            if seq in model.messages[c]:
                await store.edit_message(ids[c], seq, content, NOW + 1000)
                model.messages[c][seq] = content
        elif kind == "hide":
            seq, user = int(operation[2]), str(operation[3])  # type: ignore[call-overload]
            if seq <= last_seq[c]:
                await store.hide_message(ids[c], seq, name[user])
                model.hidden.add((c, seq, user))
    for user in USERS:
        for words in (*WORDS, "apple berry", "cherry apple berry"):
            found = await _everything(store, name[user], words)
            assert len(found) == len(set(found)), (user, words, found)
            got = {(ids.index(cid), seq) for cid, seq in found}
            assert got == model.expected(user, words), (user, words)
