"""The Store contract's edges: errors, ids, limits, races; PostgreSQL specifics at the end."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import asyncpg
import pytest

from actors.errors import Reason, WhisprError
from actors.model import Member, Message
from actors.ports import Store
from tests.services import PgSchema
from tests.store.test_contract import NOW, make_group, message, migrated_with_group
from whispr.store import migrations
from whispr.store.factory import open_store
from whispr.store.postgres import _APPEND_BATCH, PostgresStore
from whispr.store.sqlite import SqliteStore


async def test_find_by_client_id(store: Store) -> None:
    await make_group(store)
    await store.insert_messages([message("g1", 1, "bob", "phone-1")])
    found = await store.find_by_client_id("g1", "bob", "phone-1")
    assert found is not None
    assert found.seq == 1
    assert await store.find_by_client_id("g1", "alice", "phone-1") is None
    assert await store.find_by_client_id("g2", "bob", "phone-1") is None


async def test_a_client_id_twice_in_one_batch_is_written_once(store: Store) -> None:
    await make_group(store)
    first, again = await store.insert_messages(
        [message("g1", 1, "bob", "same"), message("g1", 2, "bob", "same")]
    )
    assert first.status == "inserted"
    assert again.status == "duplicate"
    assert again.message.seq == 1
    assert await store.last_seq("g1") == 1


async def test_messages_round_trip_every_field(store: Store) -> None:
    await make_group(store)
    sent = Message(
        conversation_id="g1",
        seq=1,
        id="m1",
        client_id="c1",
        sender_id="bob",
        kind="text",
        content="hi ✓ 👋",
        reply_to=None,
        created_at=NOW + 0.125,
        metadata={"e2e": True, "mentions": ["alice"]},
    )
    reply = Message(
        conversation_id="g1",
        seq=2,
        id="m2",
        client_id="c2",
        sender_id="alice",
        kind="text",
        content="re",
        reply_to=1,
        created_at=NOW + 1,
    )
    results = await store.insert_messages([sent, reply])
    assert [r.message for r in results] == [sent, reply]
    assert await store.get_message("g1", 1) == sent
    assert await store.get_message("g1", 2) == reply
    assert await store.insert_messages([]) == []


async def test_deleting_unpins_and_keeps_the_seq(store: Store) -> None:
    await make_group(store)
    await store.insert_messages([message("g1", 1), message("g1", 2)])
    await store.set_pinned("g1", 1, True)
    deleted = await store.delete_message("g1", 1)
    assert deleted.deleted
    assert not deleted.pinned
    assert await store.list_pinned("g1") == []
    assert [m.seq for m in await store.page_messages("g1")] == [1, 2]


async def test_page_limit_is_capped(store: Store) -> None:
    await make_group(store)
    await store.insert_messages([message("g1", n) for n in range(1, 251)])
    page = await store.page_messages("g1", limit=10_000)
    assert [m.seq for m in page] == list(range(51, 251))
    assert len(await store.page_messages("g1", after_seq=0, limit=10_000)) == 200
    assert await store.page_messages("g1", after_seq=250) == []


async def test_every_unknown_target_is_not_found(store: Store) -> None:
    await make_group(store)
    await store.insert_messages([message("g1", 1)])
    calls = [
        store.update_conversation("nope", settings={}),
        store.add_members(
            [Member(conversation_id="nope", user_id="x", role="member", joined_at=1)]
        ),
        store.remove_member("g1", "stranger"),
        store.update_member("g1", "stranger", muted_until=NOW),
        store.edit_message("g1", 99, "x", NOW),
        store.delete_message("g1", 99),
        store.hide_message("g1", 99, "bob"),
        store.add_reaction("g1", 99, "bob", "👍"),
        store.remove_reaction("g1", 99, "bob", "👍"),
        store.set_pinned("g1", 99, True),
        store.mark_read("g1", "stranger", 1),
        store.mark_delivered("g1", "stranger", "phone", 1),
    ]
    for call in calls:
        with pytest.raises(WhisprError) as caught:
            await call
        assert caught.value.reason is Reason.NOT_FOUND, caught.value
    assert await store.last_seq("nope") == 0
    assert await store.page_messages("nope") == []
    assert await store.list_pinned("nope") == []
    assert await store.get_read_cursors("nope") == {}


async def test_integrity_errors_are_catalogue_errors(store: Store) -> None:
    await make_group(store)
    conversation = await store.get_conversation("g1")
    assert conversation is not None
    with pytest.raises(WhisprError) as caught:
        await store.create_conversation(conversation, [])
    assert caught.value.reason is Reason.CONFLICT
    with pytest.raises(WhisprError) as caught:
        await store.update_member("g1", "bob", role="emperor")
    assert caught.value.reason is Reason.INVALID
    member = {m.user_id: m for m in await store.list_members("g1")}["bob"]
    assert member.role == "member"


async def test_updates_leave_unnamed_fields_alone(store: Store) -> None:
    await make_group(store)
    changed = await store.update_conversation("g1", avatar="a.png")
    assert (changed.title, changed.avatar) == ("Team", "a.png")
    changed = await store.update_conversation("g1", settings={"who_can_post": "admins"})
    assert (changed.title, changed.avatar) == ("Team", "a.png")
    assert changed.settings == {"who_can_post": "admins"}
    cleared = await store.update_conversation("g1", title=None)
    assert cleared.title is None
    muted = await store.update_member("g1", "bob", muted_until=NOW + 60)
    assert (muted.role, muted.muted_until, muted.notifications) == ("member", NOW + 60, "all")
    unmuted = await store.update_member("g1", "bob", muted_until=None, notifications="none")
    assert (unmuted.muted_until, unmuted.notifications) == (None, "none")


async def test_direct_conversations_get_time_ordered_ids(store: Store) -> None:
    first = await store.get_or_create_direct("ann", "ben", NOW)
    await asyncio.sleep(0.002)
    second = await store.get_or_create_direct("ann", "cat", NOW)
    assert re.fullmatch("[0-9a-f]{32}", first.id)  # actors.ids.new_id
    assert first.id < second.id
    assert first.kind == "direct"
    assert (await store.get_or_create_direct("ben", "ann", NOW + 5)).id == first.id


async def test_conversation_list_limits_hidden_and_unread(store: Store) -> None:
    for n in range(5):
        await make_group(store, f"c{n}")
        await store.insert_messages([message(f"c{n}", 1, "alice", f"a{n}")])
    await store.insert_messages([message("c0", 2, "bob", "b0")])
    await store.hide_message("c0", 2, "carol")
    await store.add_reaction("c0", 1, "bob", "👍")
    listed = await store.list_user_conversations("carol", limit=3)
    assert [s.conversation.id for s in listed] == ["c0", "c4", "c3"]
    assert listed[0].last_message is not None
    assert listed[0].last_message.seq == 1  # carol hid seq 2
    assert listed[0].last_message.reactions == {"👍": ("bob",)}
    assert listed[1].last_message is not None
    assert listed[1].last_message.client_id == "a4"
    assert listed[0].unread_count == 2
    bobs = await store.list_user_conversations("bob", limit=10)
    assert bobs[0].conversation.id == "c0"
    assert bobs[0].unread_count == 1  # his own message does not count
    assert await store.list_user_conversations("nobody", limit=10) == []
    assert await store.unread_counts("nobody") == {}


async def test_racing_writers_of_one_conversation_never_share_a_seq(store: Store) -> None:
    """Two nodes running the same conversation: the unique key decides, per message."""
    await make_group(store)

    async def writer(node: int) -> list[str]:
        batch = [message("g1", seq, "alice", f"n{node}-{seq}") for seq in range(1, 6)]
        return [r.status for r in await store.insert_messages(batch)]

    outcomes = await asyncio.gather(*(writer(node) for node in range(8)))
    assert sum(o.count("inserted") for o in outcomes) == 5
    assert all(s in ("inserted", "seq_conflict") for o in outcomes for s in o)
    stored = await store.page_messages("g1", after_seq=0)
    assert [m.seq for m in stored] == [1, 2, 3, 4, 5]


async def test_a_closed_sqlite_store_is_unavailable(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "w.db"))
    await store.open()
    await store.migrate()
    await store.close()
    with pytest.raises(WhisprError) as caught:
        await store.get_conversation("x")
    assert caught.value.reason is Reason.UNAVAILABLE
    assert not await store.ping()
    (tmp_path / "a-file").write_text("not a folder")
    unopenable = SqliteStore(str(tmp_path / "a-file" / "w.db"))
    with pytest.raises(WhisprError) as caught:
        await unopenable.open()
    assert caught.value.reason is Reason.UNAVAILABLE
    fresh = SqliteStore(str(tmp_path / "new" / "folder" / "w.db"))
    await fresh.open()  # a first run creates the folder
    await fresh.migrate()
    assert await fresh.ping()
    await fresh.close()


async def test_factory_picks_the_store(tmp_path: Path) -> None:
    assert isinstance(open_store(None, str(tmp_path / "w.db")), SqliteStore)
    assert isinstance(open_store("postgresql://x@127.0.0.1/db", "unused"), PostgresStore)


# -- PostgreSQL only ----------------------------------------------------------------------


async def test_concurrent_migrations_apply_once(pg_schema: PgSchema) -> None:
    stores = [
        PostgresStore(pg_schema.base_url, server_settings=pg_schema.server_settings, max_size=2)
        for _ in range(4)
    ]
    for store in stores:
        await store.open()
    try:
        await asyncio.gather(*(s.migrate() for s in stores))
        await stores[0].migrate()
        connection = await asyncpg.connect(pg_schema.url)
        try:
            versions = await connection.fetch("SELECT version FROM schema_migrations")
            partitions = await connection.fetchval(
                "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent "
                "JOIN pg_namespace n ON n.oid = p.relnamespace "
                "WHERE p.relname = 'messages' AND n.nspname = $1",
                pg_schema.schema,
            )
        finally:
            await connection.close()
        assert sorted(r[0] for r in versions) == [v for v, _ in migrations.load("postgres")]
        assert partitions == 16
    finally:
        for store in stores:
            await store.close()


async def test_a_send_bumps_its_conversation_row_in_place(pg_schema: PgSchema) -> None:
    """The ``conversations`` row update of every send batch is a HOT update.

    An index on a column the update changes (as ``conversations_activity`` was) makes each
    bump a new row version with an entry in every index: the table and its indexes then
    grow with every batch until vacuum catches up.
    """
    await migrated_with_group(pg_schema.url)
    connection = await asyncpg.connect(pg_schema.url)
    try:
        async with connection.transaction():
            for n in range(5):
                batch = [{"conversation_id": "g1", "id": f"m{n}", "client_id": f"c{n}",
                          "sender_id": "alice", "kind": "text", "content": "hi",
                          "created_at": NOW + n}]  # fmt: skip
                await connection.fetch(_APPEND_BATCH, json.dumps(batch))
            updated, hot = await connection.fetchrow(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables "
                "WHERE relname = 'conversations' AND schemaname = $1",
                pg_schema.schema,
            )
            last_seq = await connection.fetchval("SELECT last_seq FROM conversations")
    finally:
        await connection.close()
    assert last_seq == 5
    assert (updated, hot) == (5, 5)


async def test_sessions_run_without_jit_and_with_the_callers_settings(pg_schema: PgSchema) -> None:
    store = PostgresStore(pg_schema.base_url, server_settings=pg_schema.server_settings)
    await store.open()
    try:
        async with store._connection() as connection:
            assert await connection.fetchval("SHOW jit") == "off"
            assert await connection.fetchval("SHOW application_name") == "whispr"
            assert pg_schema.schema in await connection.fetchval("SHOW search_path")
    finally:
        await store.close()


async def test_a_closed_port_is_unavailable_within_seconds() -> None:
    began = time.monotonic()
    store = PostgresStore("postgresql://postgres@127.0.0.1:9/test", connect_timeout=2)
    with pytest.raises(WhisprError) as caught:
        await store.open()
    assert caught.value.reason is Reason.UNAVAILABLE
    assert "asyncpg" not in type(caught.value).__module__
    assert not await store.ping()
    assert time.monotonic() - began < 5


async def test_a_slow_query_is_unavailable_and_the_pool_recovers(pg_schema: PgSchema) -> None:
    store = PostgresStore(
        pg_schema.base_url, server_settings=pg_schema.server_settings, command_timeout=1.0
    )
    await store.open()
    try:
        await store.migrate()
        await make_group(store)
        blocker = await asyncpg.connect(pg_schema.url)
        try:
            transaction = blocker.transaction()
            await transaction.start()
            await blocker.execute("SELECT * FROM conversations WHERE id = 'g1' FOR UPDATE")
            began = time.monotonic()
            with pytest.raises(WhisprError) as caught:
                await store.update_conversation("g1", title="blocked")
            assert caught.value.reason is Reason.UNAVAILABLE
            assert time.monotonic() - began < 4
            await transaction.rollback()
        finally:
            await blocker.close()
        renamed = await store.update_conversation("g1", title="later")
        assert renamed.title == "later"
    finally:
        await store.close()


async def test_killed_connections_are_unavailable_then_reconnect(pg_schema: PgSchema) -> None:
    # Named, so that only this store's connections are killed: the database is
    # shared with other test runs.
    application = f"whispr-{pg_schema.schema}"
    store = PostgresStore(
        pg_schema.base_url,
        server_settings={**pg_schema.server_settings, "application_name": application},
    )
    await store.open()
    try:
        await store.migrate()
        await make_group(store)
        admin = await asyncpg.connect(pg_schema.base_url)
        try:
            killed = await admin.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1 AND state = 'idle'",
                application,
            )
            assert killed >= 1
        finally:
            await admin.close()
        reasons = []
        for _ in range(2):  # the first call may meet the dead connection; never a driver error
            try:
                await store.get_conversation("g1")
            except WhisprError as error:
                reasons.append(error.reason)
        assert set(reasons) <= {Reason.UNAVAILABLE}
        assert await store.get_conversation("g1") is not None
        assert await store.ping()
    finally:
        await store.close()
