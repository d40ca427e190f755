"""One user's bad input fails nobody else's send, and the stores accept and refuse alike.

A group-commit batch holds many users' sends in many conversations; a value one of
them sends that a store cannot hold (NUL, a lone surrogate) is refused for that
sender alone, with Whispr's words naming the field, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.conversation import Draft
from actors.errors import Reason, WhisprError
from actors.model import Attachment, InsertResult, Message, Unsequenced
from actors.ports import Store
from supervisors.batching import Batcher
from tests.actors.conftest import Stack, build_stack
from tests.services import PgSchema
from tests.store.test_contract import NOW, make_group
from whispr.store import _check, _isolate
from whispr.store.postgres import PostgresStore

#: What PostgreSQL and its driver say; none of it may reach a client.
DATABASE_WORDING = ("rejected by the database", "unicode escape", "byte sequence", "postgres")


def _no_database_wording(text: str) -> None:
    lowered = text.lower()
    assert not any(words in lowered for words in DATABASE_WORDING), text


def _draft(client_id: str, poison: str | None = None) -> Draft:
    """A media send, with NUL in one field when ``poison`` names it."""
    bad = "x\x00y"
    metadata: dict[str, Any] = {"mentions": ["bob"], "reply": {"preview": "hi"}}
    if poison == "metadata_key":
        metadata[bad] = 1
    elif poison == "metadata_value":
        metadata["reply"] = {"preview": [bad]}
    attachment = Attachment(
        id=bad if poison == "attachment_id" else "media-1",
        mime_type="image/p\x00ng" if poison == "mime_type" else "image/png",
        size=10,
        name="photo.png",
    )
    return Draft(
        client_id=bad if poison == "client_id" else client_id,
        kind="media",
        content="look",
        attachments=(attachment,),
        metadata=metadata,
    )


@pytest.fixture
async def stack(store: Store) -> AsyncIterator[Stack]:
    built = await build_stack(store)
    yield built
    built.supervisor.stop(block=False)
    await built.supervisor.wait_exit()


POISONS = ["client_id", "metadata_key", "metadata_value", "attachment_id", "mime_type"]
FIELD_OF = {
    "client_id": "client_id",
    "metadata_key": "metadata",
    "metadata_value": "metadata",
    "attachment_id": "attachments",
    "mime_type": "attachments",
}


@pytest.mark.parametrize("poison", POISONS)
async def test_only_the_poisoner_is_refused_among_concurrent_sends(
    stack: Stack, poison: str
) -> None:
    users = ["alice", "bob", "carol", "dave"]
    groups = [await stack.messaging.create_group("alice", f"g{i}", users[1:]) for i in range(3)]
    sends = [
        (user, group.id, _draft(f"{user}-{n}"))
        for n, (user, group) in enumerate(itertools.product(users, groups))
    ]
    sends.insert(5, ("mallory", groups[1].id, _draft("evil", poison)))
    await stack.messaging.add_members("alice", groups[1].id, ["mallory"])
    outcomes = await asyncio.gather(
        *(stack.messaging.send(user, group_id, draft) for user, group_id, draft in sends),
        return_exceptions=True,
    )
    refused = outcomes.pop(5)
    assert isinstance(refused, WhisprError)
    assert refused.reason is Reason.INVALID
    assert refused.details["field"] == FIELD_OF[poison]
    _no_database_wording(refused.message)
    assert all(isinstance(o, Message) for o in outcomes), outcomes
    for group in groups:
        stored = await stack.store.page_messages(group.id, after_seq=0, limit=100)
        assert sorted(m.sender_id for m in stored if m.kind == "media") == users
        assert [m.seq for m in stored] == list(range(1, len(stored) + 1))
        assert all(m.sender_id != "mallory" for m in stored)


def _unsequenced(conversation_id: str, client_id: str, **fields: Any) -> Unsequenced:
    given: dict[str, Any] = {"sender_id": "alice", "kind": "text", "content": "hello"}
    return Unsequenced(
        conversation_id=conversation_id,
        id=f"{conversation_id}-{client_id.replace(chr(0), '0')}",
        client_id=client_id,
        created_at=NOW,
        **(given | fields),
    )


POISONED_ROWS = {
    "client_id": {"client_id": "k\x00"},
    "metadata_key": {"metadata": {"a\x00": 1}},
    "metadata_value": {"metadata": {"a": {"b": ["\x00"]}}},
    "attachment_id": {
        "kind": "media",
        "attachments": (Attachment(id="\x00", mime_type="image/png", size=1, name="a"),),
    },
    "mime_type": {
        "kind": "media",
        "attachments": (Attachment(id="m", mime_type="image/\x00", size=1, name="a"),),
    },
}


@pytest.mark.parametrize("poison", POISONS)
async def test_a_batch_refuses_only_the_poisoned_row(store: Store, poison: str) -> None:
    """Straight to the store, through group commit: chunks of several conversations."""
    for name in ("g1", "g2", "g3"):
        await make_group(store, name)
    batcher = Batcher[Message, InsertResult](store.insert_messages, max_in_flight=1)
    fields = dict(POISONED_ROWS[poison])
    client_id = str(fields.pop("client_id", "bad"))
    poisoned = _unsequenced("g2", client_id, sender_id="bob", **fields)
    chunks = [[_unsequenced(name, f"{name}-{n}") for n in range(3)] for name in ("g1", "g2", "g3")]
    chunks[1].insert(1, poisoned)
    results = await asyncio.gather(*(batcher.submit_many(chunk) for chunk in chunks))
    assert [r.status for r in results[1]] == ["inserted", "invalid", "inserted", "inserted"]
    assert results[1][1].field == FIELD_OF[poison]
    assert all(r.status == "inserted" for r in results[0] + results[2])
    for name in ("g1", "g2", "g3"):
        assert await store.last_seq(name) == 3
    assert [m.client_id for m in await store.page_messages("g2", after_seq=0)] == [
        "g2-0",
        "g2-1",
        "g2-2",
    ]


TEXTS = st.sampled_from(["ok", "café ☕", "a\x00b", "\x00", "\ud800", "x\udfffy", "日本"])


def _valid(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    client_id=TEXTS,
    content=TEXTS,
    key=TEXTS,
    value=TEXTS,
    attachment=st.one_of(st.none(), st.tuples(TEXTS, TEXTS, TEXTS)),
)
async def test_both_stores_accept_and_refuse_the_same_sends(
    stack: Stack,
    client_id: str,
    content: str,
    key: str,
    value: str,
    attachment: tuple[str, str, str] | None,
) -> None:
    """Accepted when every text is valid, else ``invalid`` naming a field holding bad text;
    run on both stores, so the stores agree on every send."""
    group = await stack.messaging.create_group("alice", "g", ["bob"])
    bad_fields = set()
    if not _valid(client_id):
        bad_fields.add("client_id")
    if not _valid(content):
        bad_fields.add("content")
    if not (_valid(key) and _valid(value)):
        bad_fields.add("metadata")
    attachments: tuple[Attachment, ...] = ()
    if attachment is not None:
        media_id, subtype, name = attachment
        attachments = (Attachment(id=media_id, mime_type=f"image/{subtype}", size=5, name=name),)
        if not all(_valid(t) for t in attachment) or " " in subtype:
            bad_fields.add("attachments")
    draft = Draft(
        client_id=f"c-{client_id}",
        kind="media" if attachments else "text",
        content=content,
        attachments=attachments,
        metadata={key: {"nested": [value]}},
    )
    if bad_fields:
        with pytest.raises(WhisprError) as caught:
            await stack.messaging.send("alice", group.id, draft)
        assert caught.value.reason is Reason.INVALID, caught.value
        assert caught.value.details.get("field") in bad_fields, caught.value
        _no_database_wording(caught.value.message)
        return
    sent = await stack.messaging.send("alice", group.id, draft)
    stored = await stack.store.get_message(group.id, sent.seq)
    assert stored is not None
    assert (stored.content, stored.metadata) == (content, draft.metadata)


async def test_postgres_refusals_are_in_whisprs_words_and_isolated(
    pg_schema: PgSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the checks out of the way, PostgreSQL itself refuses the NUL: the batch is
    bisected, the refused row's caller alone is told, in Whispr's words."""
    store = PostgresStore(pg_schema.url)
    await store.open()
    try:
        await store.migrate()
        await make_group(store, "g1")
        monkeypatch.setattr(_check, "messages", lambda batch: None)
        batch = [_unsequenced("g1", f"k{n}") for n in range(5)]
        batch[3] = _unsequenced("g1", "k3", metadata={"a": "\x00"})
        results = await store.insert_messages(batch)
        assert [r.status for r in results] == ["inserted"] * 3 + ["invalid", "inserted"]
        _no_database_wording(results[3].detail)
        assert [r.message.seq for r in results if r.status == "inserted"] == [1, 2, 3, 4]
    finally:
        await store.close()


async def test_an_unavailable_store_fails_the_batch_at_once() -> None:
    """No retry row by row against a store that is down: one write, and ``unavailable``."""
    calls = []

    async def down(batch: Any) -> list[InsertResult]:
        calls.append(len(batch))
        raise WhisprError(Reason.UNAVAILABLE, "the message store is unavailable; try again")

    batch = [_unsequenced("g1", f"k{n}") for n in range(8)]
    with pytest.raises(WhisprError) as caught:
        await _isolate.insert_isolated(down, batch)
    assert caught.value.reason is Reason.UNAVAILABLE
    assert calls == [8]
