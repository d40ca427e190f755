"""Search, indexing and export figures of the store benchmark (``whispr/bench/store.py``).

``search_p95_ms`` / ``search_p50_ms``  a search of one user's conversations (the first
                                 page, 20 hits, ranked, with snippets) in a store of
                                 ``messages`` messages where the user is in 200
                                 conversations: the 95th and 50th percentiles over
                                 :data:`QUERIES` queries (see :func:`_queries`)
``search_common_words_p95_ms``   the same for each of the :data:`COMMON` most frequent
                                 words alone: the worst case, where a query matches up to
                                 half of the user's messages and every match is ranked
``index_overhead_pct``           what the search index adds to group commit's cost per
                                 message: the store benchmark's group-commit load (sends
                                 through the actors) on a schema with the index and on one
                                 without it (its columns, index and trigger dropped), run
                                 alternately, the median rate of each;
                                 ``index_overhead_batch_write_pct`` the same for the batch
                                 write alone (batches of 200 sends straight to
                                 ``Store.insert_messages``, the median time of each), the
                                 database's share, where the index's whole cost lands
``export_msgs_per_s``            the user's export (``SearchReads.export``, JSON lines to a
                                 sink), messages per second

The store is loaded fast: the messages are made here (a Zipf-like vocabulary, 5 to 14 words
each) and written with ``COPY`` while the search index does not exist yet, then the index is
built once (a GIN build is much cheaper than a million inserts into it). Conversations hold
:data:`PER_CONVERSATION` messages each; the user is a member of :data:`USER_CONVERSATIONS`
of them, three other users of each. ``messages`` is a parameter
(``WHISPR_BENCH_SEARCH_MESSAGES``, 1,000,000 by default, 20,000 with ``--quick``), so that
tests run it small.
"""

from __future__ import annotations

import math
import random
import statistics
import time
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from actors.ids import new_id
from actors.model import Unsequenced
from actors.search import CursorCodec, MessageFilters, SearchQuery
from actors.search_reads import SearchReads, json_line
from whispr.store.postgres import PostgresStore

__all__ = ["PER_CONVERSATION", "QUERIES", "USER_CONVERSATIONS", "measure_search"]

PER_CONVERSATION = 200
USER_CONVERSATIONS = 200
QUERIES = 300
VOCABULARY = 5000
COMMON = 20
"""The most frequent words, searched apart (``search_common_words_p95_ms``): each is in over
5% of the messages, the most frequent in over half, as a language's stop words are."""
USER = "searcher"
_BATCHES = 40  # per schema and round of the overhead measure
_BATCH = 200  # sends per batch, over 20 conversations


def _vocabulary(rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < VOCABULARY:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 9))))
    return sorted(words)


def _word(rng: random.Random, words: Sequence[str]) -> str:
    """A word with a Zipf-like frequency: rank r is drawn about as often as 1/r."""
    rank = int(len(words) ** rng.random()) - 1
    return words[rank]


async def _load(
    c: asyncpg.Connection, schema: str, messages: int, rng: random.Random, words: list[str]
) -> list[str]:
    """Conversations, members and messages by COPY; the user's conversations returned."""
    conversations = max(USER_CONVERSATIONS, messages // PER_CONVERSATION)
    per = max(1, messages // conversations)
    now = time.time() - 86400 * 30
    ids = [f"c{n:07d}" for n in range(conversations)]
    theirs = sorted(rng.sample(ids, USER_CONVERSATIONS))
    mine = set(theirs)
    await c.copy_records_to_table(
        "conversations",
        schema_name=schema,
        columns=["id", "kind", "created_by", "created_at", "last_seq", "last_message_at"],
        records=[(i, "group", "u0", now, per, now + per) for i in ids],
    )
    members = [
        (i, u, "member", now)
        for i in ids
        for u in ([USER] if i in mine else []) + [f"u{rng.randrange(1000)}" for _ in range(3)]
    ]
    await c.copy_records_to_table(
        "members",
        schema_name=schema,
        columns=["conversation_id", "user_id", "role", "joined_at"],
        records=list({(m[0], m[1]): m for m in members}.values()),
    )
    columns = ["conversation_id", "seq", "id", "client_id", "sender_id", "kind", "content"]
    columns += ["created_at"]
    chunk: list[tuple[Any, ...]] = []
    for i in ids:
        for seq in range(1, per + 1):
            content = " ".join(_word(rng, words) for _ in range(rng.randint(5, 14)))
            chunk.append((i, seq, new_id(), f"m{seq}", f"u{seq % 7}", "text", content, now + seq))
        if len(chunk) >= 50_000:
            await c.copy_records_to_table(
                "messages", schema_name=schema, columns=columns, records=chunk
            )
            chunk = []
    if chunk:
        await c.copy_records_to_table(
            "messages", schema_name=schema, columns=columns, records=chunk
        )
    return theirs


async def _without_index(c: asyncpg.Connection) -> None:
    await c.execute("DROP INDEX messages_search")
    await c.execute("DROP TRIGGER messages_search_config ON messages")
    await c.execute("ALTER TABLE messages DROP COLUMN search_vector, DROP COLUMN search_config")


async def _batch_ms(store: PostgresStore, groups: list[str], rounds: int) -> list[float]:
    """Milliseconds per batch of :data:`_BATCH` sends over 20 of ``groups``."""
    times = []
    for n in range(rounds):
        targets = groups[(n * 20) % len(groups) :][:20]
        batch = [
            Unsequenced(
                conversation_id=targets[k % len(targets)],
                id=new_id(),
                client_id=new_id(),
                sender_id="u0",
                kind="text",
                content="a typical short chat message about the plans for tonight",
                created_at=time.time(),
                trusted_sender=True,
            )
            for k in range(_BATCH)
        ]
        began = time.perf_counter()
        await store.insert_messages(batch)
        times.append((time.perf_counter() - began) * 1e3)
    return times


async def _overhead(url: str, per_sender: int, rounds: int) -> tuple[float, float]:
    """Percent more cost per message with the search index than without: of group commit
    through the actors (the store benchmark's ``group_commit`` load, messages per second),
    and of the batch write alone (median milliseconds per batch)."""
    from whispr.bench.store import CONVERSATIONS, SENDERS, throughput

    stores: dict[str, PostgresStore] = {}
    schemas = {name: f"bench_{name}_{uuid.uuid4().hex[:8]}" for name in ("with", "without")}
    admin = await asyncpg.connect(url)
    try:
        for name, schema in schemas.items():
            await admin.execute(f'CREATE SCHEMA "{schema}"')
            store = PostgresStore(url, server_settings={"search_path": schema}, max_size=10)
            await store.open()
            await store.migrate()
            stores[name] = store
            await admin.execute(
                f'INSERT INTO "{schema}".conversations (id, kind, created_by, created_at) '
                "SELECT 'o' || n, 'group', 'u0', 0 FROM generate_series(0, 199) n"
            )
        await admin.execute(f'SET search_path = "{schemas["without"]}"')
        await _without_index(admin)
        groups = [f"o{n}" for n in range(200)]
        rates: dict[str, list[float]] = {"with": [], "without": []}
        batches: dict[str, list[float]] = {"with": [], "without": []}
        for name in stores:  # warm both (plans, caches)
            await _batch_ms(stores[name], groups, 5)
        for _ in range(rounds):  # back to back, alternating
            for name, store in stores.items():
                rate, _ = await throughput(
                    store,
                    max_batch=1000,
                    conversations=CONVERSATIONS,
                    senders=SENDERS,
                    per_sender=per_sender,
                )
                rates[name].append(rate)
                batches[name] += await _batch_ms(store, groups, _BATCHES)
        commit = statistics.median(rates["without"]) / statistics.median(rates["with"])
        batch = statistics.median(batches["with"]) / statistics.median(batches["without"])
        return (commit - 1) * 100, (batch - 1) * 100
    finally:
        for store in stores.values():
            await store.close()
        for schema in schemas.values():
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


def _queries(rng: random.Random, words: list[str], groups: list[str]) -> list[SearchQuery]:
    """Words as people search them: any word of the vocabulary but its :data:`COMMON` most
    frequent (the band a language's stop words take), its frequency rank drawn
    log-uniformly (each order of magnitude of frequency as likely); a quarter of two words,
    a tenth with a sender filter, a tenth in one conversation."""
    queries = []
    for n in range(QUERIES):
        text = _word(rng, words[COMMON:])
        if n % 4 == 0:
            text += " " + _word(rng, words[COMMON:])
        filters = MessageFilters(sender_id="u3") if n % 10 == 0 else MessageFilters()
        scope = groups[n % len(groups)] if n % 10 == 5 else None
        queries.append(
            SearchQuery(viewer_id=USER, text=text, conversation_id=scope, filters=filters, limit=20)
        )
    return queries


async def _latencies(
    store: PostgresStore, queries: Sequence[SearchQuery]
) -> tuple[list[float], int]:
    """Milliseconds of each query (the first page), sorted, and the hits found."""
    latencies, found = [], 0
    for query in queries:
        started = time.perf_counter()
        hits = await store.search_messages(query)
        latencies.append((time.perf_counter() - started) * 1e3)
        found += len(hits)
    return sorted(latencies), found


def _p95(latencies: Sequence[float]) -> float:
    return latencies[max(0, math.ceil(len(latencies) * 0.95) - 1)]


async def measure_search(
    url: str, messages: int, per_sender: int = 20, rounds: int = 5
) -> dict[str, Any]:
    """The figures of this module's docstring, on a fresh schema dropped afterwards."""
    rng = random.Random(20)
    words = _vocabulary(rng)
    schema = f"bench_search_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    store = PostgresStore(url, server_settings={"search_path": schema}, max_size=4)
    try:
        await store.open()
        await store.migrate()
        await admin.execute(f'SET search_path = "{schema}"')
        began = time.perf_counter()
        await admin.execute("DROP INDEX messages_search")
        groups = await _load(admin, schema, messages, rng, words)
        await admin.execute("SET maintenance_work_mem = '256MB'")
        await admin.execute(
            "CREATE INDEX messages_search ON messages USING gin (conversation_id, search_vector)"
        )
        await admin.execute("ANALYZE")
        load_s = time.perf_counter() - began
        print(f"[store] search: {messages:,} messages loaded in {load_s:,.0f} s", flush=True)

        queries = _queries(rng, words, groups)
        await _latencies(store, queries[:20])  # warm the caches and plans
        latencies, found = await _latencies(store, queries)
        p95, p50 = _p95(latencies), statistics.median(latencies)
        common = [SearchQuery(viewer_id=USER, text=word, limit=20) for word in words[:COMMON]]
        common_latencies, _ = await _latencies(store, common)
        common_p95 = _p95(common_latencies)
        print(
            f"[store] search: p50 {p50:.1f} ms, p95 {p95:.1f} ms; "
            f"the {COMMON} most common words: p95 {common_p95:.1f} ms; export...",
            flush=True,
        )

        reads = SearchReads(store, CursorCodec(b""))
        plan = await reads.plan(USER, None)
        started, exported, size = time.perf_counter(), 0, 0
        async for message in reads.export(USER, plan):
            size += len(json_line(message)) + 1
            exported += 1
        export_s = time.perf_counter() - started
        if exported != plan.total:
            raise AssertionError(f"exported {exported} of {plan.total} messages")
        print(f"[store] export: {exported / export_s:,.0f} msgs/s; index overhead...", flush=True)
        overhead, batch_overhead = await _overhead(url, per_sender, rounds)
        print(
            f"[store] index overhead: {overhead:.1f}% of group commit, "
            f"{batch_overhead:.1f}% of the batch write",
            flush=True,
        )
        return {
            "search_p95_ms": p95,
            "search_p50_ms": p50,
            "search_messages": messages,
            "search_user_conversations": len(groups),
            "search_queries": len(queries),
            "search_hits_per_query": found / len(queries),
            "search_common_words_p95_ms": common_p95,
            "search_load_s": load_s,
            "export_msgs_per_s": exported / export_s,
            "export_messages": exported,
            "export_bytes": size,
            "index_overhead_pct": overhead,
            "index_overhead_batch_write_pct": batch_overhead,
        }
    finally:
        await store.close()
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()
