"""``PostgresStore``: the production store, on an asyncpg pool.

Group commit is one statement: the batch goes in as arrays, ``unnest``
turns them into rows, ``ON CONFLICT DO NOTHING`` lets both unique keys
(seq, client id) decide, and a data-modifying CTE moves the conversations'
``last_seq`` in the same statement, so a whole batch of many conversations
costs one round trip and is atomic. Rows that were not inserted are looked up
by client id afterwards (rare: retries and races) to tell a duplicate from a
seq conflict.

Sends from the conversation actors are ``Unsequenced``: the database gives
them their seqs, in one call of the ``append_messages`` function (migration
0003) that locks the batch's conversations, skips client ids already stored
and numbers the rest after each conversation's ``last_seq``; one round trip,
atomic, gap-free, and no writer ever loses a race for a seq.

``messages`` is partitioned by HASH of ``conversation_id`` (16 partitions,
primary key ``(conversation_id, seq)``): every hot query names one
conversation, so it is pruned to one partition; partitions by time would
split a conversation's history and need a job creating new ones. See
``docs/storage.md``.

Connection failures and timeouts become ``WhisprError(unavailable)``; no
asyncpg exception leaves this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import msgspec
import structlog

from actors import rules
from actors.errors import Reason, WhisprError
from actors.ids import new_id
from actors.model import (
    Conversation,
    ConversationSummary,
    DeliveryCursor,
    Draft,
    InsertResult,
    Member,
    Message,
    Unsequenced,
)
from actors.ports import UNCHANGED
from actors.scheduling import Expiry, Schedule
from actors.search import (
    MessageFilters,
    SearchHit,
    SearchQuery,
    as_times,
    check_filters,
    check_query,
)
from supervisors.batching import Batcher
from whispr.audit.record import AuditCursor, AuditKind, AuditRecord
from whispr.revocations import Revocation
from whispr.store import _accounts, _audit, _check, _isolate, _rows, _schedules, migrations
from whispr.store.e2e_postgres import PostgresKeys

__all__ = ["PostgresStore"]

log = structlog.get_logger("whispr.store")

_MESSAGE_COLUMNS = (
    "conversation_id, seq, id, client_id, sender_id, kind, content, attachments::text, "
    "reply_to, created_at, edited_at, deleted, pinned, metadata::text"
)

_CONVERSATION_COLUMNS = (
    "id, kind, title, avatar, created_by, created_at, last_seq, last_message_at, settings::text, "
    "description"
)


def _not_hidden(message: str, viewer: str) -> str:
    """SQL: the message row ``message`` is not hidden from the user ``viewer`` (both SQL
    expressions), i.e. not deleted for that user alone."""
    return (
        f"NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.conversation_id = "
        f"{message}.conversation_id AND h.user_id = {viewer} AND h.seq = {message}.seq)"
    )


_MIGRATION_LOCK = 0x5748_5350  # "WHSP": with the schema's hash, one migrator at a time
_MIGRATE_TIMEOUT = 600.0

_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # e.g. a connection the server killed mid-protocol
    asyncpg.CannotConnectNowError,
    asyncpg.QueryCanceledError,
    asyncpg.InsufficientResourcesError,
    asyncpg.OperatorInterventionError,
)
#: Transient failures of a whole transaction, safe to retry as it is.
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
_INSERT_ATTEMPTS = 3
_KEPT_WRITERS = 4  # connections group commit keeps (a node has two batches in flight)


def _translate(exc: BaseException) -> WhisprError | None:
    """The catalogue's error for a driver exception, or None for ours to pass through.

    The message is Whispr's own: the driver's (which quotes PostgreSQL, values and
    all) is logged here and never reaches a client.
    """
    if isinstance(exc, WhisprError):
        return None
    error = _refusal(exc)
    if error is not None:
        log.warning(
            "postgres error",
            reason=error.reason.value,
            error_type=type(exc).__name__,
            error=str(exc),
        )
    return error


def _refusal(exc: BaseException) -> WhisprError | None:
    if isinstance(exc, _UNAVAILABLE):
        return WhisprError(Reason.UNAVAILABLE, "the message store is unavailable; try again")
    if isinstance(exc, asyncpg.CheckViolationError | asyncpg.DataError):
        return WhisprError(Reason.INVALID, "the message store cannot hold this value")
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return WhisprError(Reason.CONFLICT, "this conflicts with stored data")
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
        return WhisprError(Reason.UNAVAILABLE, "the message store failed; try again")
    return None


#: Group commit: one statement, one round trip, for a batch of many conversations.
_INSERT_BATCH = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[],
        $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[],
        $10::double precision[], $11::text[])
    AS t(conversation_id, seq, id, client_id, sender_id, kind, content,
         attachments, reply_to, created_at, metadata)
), written AS (
    INSERT INTO messages (conversation_id, seq, id, client_id, sender_id, kind,
        content, attachments, reply_to, created_at, metadata)
    SELECT conversation_id, seq, id, client_id, sender_id, kind, content,
        attachments::jsonb, reply_to, created_at, metadata::jsonb FROM input
    ON CONFLICT DO NOTHING
    RETURNING conversation_id, seq, sender_id, client_id, created_at
), bumped AS (
    UPDATE conversations c
    SET last_seq = GREATEST(c.last_seq, w.seq),
        last_message_at = GREATEST(COALESCE(c.last_message_at, 0), w.at)
    FROM (SELECT conversation_id, max(seq) AS seq, max(created_at) AS at
          FROM written GROUP BY conversation_id ORDER BY conversation_id) w
    WHERE c.id = w.conversation_id
)
SELECT conversation_id, seq, sender_id, client_id FROM written
"""

#: Sends the database sequences (``Unsequenced``): see migration 0003 (append_messages).
_APPEND_BATCH = "SELECT r_ord, r_seq FROM append_messages($1::json)"
_batch_encoder = msgspec.json.Encoder()


async def _keep_session(_connection: Any) -> None:
    """Release a connection without asyncpg's reset query (one round trip per use saved).

    asyncpg still rolls back a transaction left open. The reset query would
    also drop LISTENs, session advisory locks, ``SET`` values and cursors:
    this store makes none of them (its advisory lock is transaction-scoped,
    its settings are connection parameters), so there is nothing to reset.
    """


def _columns(batch: Sequence[Message]) -> list[Any]:
    """A batch with given seqs as the column arrays the statement takes."""
    dumps = _rows.dumps
    return list(
        zip(
            *(
                (
                    m.conversation_id,
                    m.seq,
                    m.id,
                    m.client_id,
                    m.sender_id,
                    m.kind,
                    m.content,
                    dumps(m.attachments),
                    m.reply_to,
                    m.created_at,
                    dumps(m.metadata),
                )
                # Every key includes the conversation, so only the order within a
                # conversation matters; sorting by conversation makes concurrent
                # batches (other nodes') take their locks in one order.
                for m in sorted(batch, key=lambda m: m.conversation_id)
            ),
            strict=True,
        )
    )


#: Session settings of every connection (the caller's ``server_settings`` add to them).
#: JIT compilation pays off for long analytical queries, never for this store's short
#: indexed ones, yet PostgreSQL's cost-based trigger fires on them whenever the planner's
#: estimates are high, as they are before a table's first ANALYZE: an unread-count query
#: that runs in 0.1 ms was measured spending 500 ms compiling.
SESSION_SETTINGS = {"jit": "off", "application_name": "whispr"}


#: Pages after a seq for many readers at once (catch-up): ``$1`` conversations, ``$2`` the
#: seq each page starts after, ``$3`` each page's size, ``$4`` the viewer (whose hidden
#: messages are left out, or NULL). Each row carries its request's position, ``i`` (from 1).
_PAGES_AFTER = f"""
SELECT q.i, m.* FROM unnest($1::text[], $2::bigint[], $3::int[], $4::text[])
    WITH ORDINALITY AS q(conversation_id, after_seq, size, viewer_id, i)
CROSS JOIN LATERAL (
    SELECT {_MESSAGE_COLUMNS} FROM messages m
    WHERE m.conversation_id = q.conversation_id AND m.seq > q.after_seq AND NOT m.expired
    AND (q.viewer_id IS NULL OR {_not_hidden("m", "q.viewer_id")})
    ORDER BY m.seq LIMIT q.size
) m
ORDER BY q.i, m.seq
"""


#: Filters of a page or a search on the message row ``m`` (parameters $n to $n+3): sender,
#: kind, since (included), until (excluded).
def _filtered(n: int) -> str:
    return (
        f"(${n}::text IS NULL OR m.sender_id = ${n}) "
        f"AND (${n + 1}::text IS NULL OR m.kind = ${n + 1}) "
        f"AND (${n + 2}::float8 IS NULL OR m.created_at >= ${n + 2}) "
        f"AND (${n + 3}::float8 IS NULL OR m.created_at < ${n + 3})"
    )


def _filter_args(filters: MessageFilters | None) -> tuple[Any, ...]:
    if filters is None:
        return (None, None, None, None)
    return (filters.sender_id, filters.kind, *as_times(filters))


#: A search (actors/search.py): the viewer's conversations grouped by language, each
#: group's query parsed once in its language, each conversation's matches found through the
#: (conversation, words) GIN index of its one partition (a lateral join: with all the ids
#: at once, every partition's index would be probed for every conversation), ranked, cut
#: after the cursor; snippets only for the page's rows. $1 viewer, $2 one conversation or
#: NULL, $3 text, $4-$7 filters, $8 has an attachment, $9-$11 the cursor (rank,
#: conversation, seq), $12 the page size.
_SEARCH = f"""
WITH langs AS (
    SELECT cfg, array_agg(id) AS ids, plainto_tsquery(cfg, $3) AS q
    FROM (SELECT c.id,
                 COALESCE((c.settings ->> 'search_language')::regconfig, 'simple') AS cfg
          FROM members mb JOIN conversations c ON c.id = mb.conversation_id
          WHERE mb.user_id = $1 AND ($2::text IS NULL OR mb.conversation_id = $2)) s
    GROUP BY cfg
), found AS (
    SELECT * FROM (
        SELECT m.conversation_id, m.seq, l.cfg, l.q,
               ts_rank(m.search_vector, l.q)::float8 AS rank
        FROM langs l CROSS JOIN unnest(l.ids) AS i(id)
        JOIN LATERAL (
            SELECT * FROM messages m WHERE m.conversation_id = i.id AND m.search_vector @@ l.q
        ) m ON true
        WHERE {_filtered(4)}
          AND ($8::bool IS NULL OR (m.attachments <> '[]'::jsonb) = $8)
          AND {_not_hidden("m", "$1")}
    ) r
    WHERE $9::float8 IS NULL OR r.rank < $9 OR (r.rank = $9 AND (
        r.conversation_id > $10 OR (r.conversation_id = $10 AND r.seq < $11)))
    ORDER BY r.rank DESC, r.conversation_id, r.seq DESC
    LIMIT $12
)
SELECT {", ".join("m." + c.strip() for c in _MESSAGE_COLUMNS.split(","))}, f.rank,
       ts_headline(f.cfg, m.content, f.q,
                   'StartSel=' || chr(57344) || ', StopSel=' || chr(57345)
                   || ', MaxWords=30, MinWords=12, ShortWord=2') AS snippet
FROM found f JOIN messages m ON m.conversation_id = f.conversation_id AND m.seq = f.seq
ORDER BY f.rank DESC, f.conversation_id, f.seq DESC
"""

#: The reactions of the messages ``($1[k], $2[k])``.
_REACTIONS_OF = """
SELECT r.conversation_id, r.seq, r.emoji, r.user_id FROM reactions r
JOIN unnest($1::text[], $2::bigint[]) AS k(conversation_id, seq) USING (conversation_id, seq)
ORDER BY r.conversation_id, r.seq, r.emoji, r.created_at, r.user_id
"""

#: One catch-up page asked for: conversation, after seq, page size, viewer.
_PageAfter = tuple[str, int, int, str | None]


async def _with_reactions(c: Any, rows: Sequence[Any]) -> list[Message]:
    """Message ``rows`` (of any conversations) as messages, in their order, with their
    reactions read in one statement."""
    # Once each: rows may repeat a message (catch-up pages of one conversation overlap).
    keys = list(dict.fromkeys((r["conversation_id"], r["seq"]) for r in rows))
    reaction_rows = await c.fetch(_REACTIONS_OF, *zip(*keys, strict=True)) if keys else []
    # Ordered by conversation first: each conversation's reactions are one run.
    reactions = {
        conversation_id: _rows.reactions_by_seq(group)
        for conversation_id, group in itertools.groupby(
            reaction_rows, key=lambda r: r["conversation_id"]
        )
    }
    return [_rows.message(r, reactions.get(r["conversation_id"], {}).get(r["seq"])) for r in rows]


class PostgresStore(PostgresKeys):
    """The :class:`actors.ports.Store` on PostgreSQL (and the end-to-end
    :class:`actors.e2e.ports.KeyStore`, :mod:`whispr.store.e2e_postgres`)."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        server_settings: dict[str, str] | None = None,
        command_timeout: float = 5.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.min_size = min_size
        self.max_size = max_size
        self.server_settings = {**SESSION_SETTINGS, **(server_settings or {})}
        self.command_timeout = command_timeout
        self.connect_timeout = connect_timeout
        self._pool: asyncpg.Pool | None = None
        # Connections group commit keeps between batches (see ``_writer``).
        self._writers: list[Any] = []
        # Catch-up pages asked for together (a thousand clients reconnecting at once) are
        # read in one pair of statements per batch instead of a pool round trip each.
        self._pages_after = Batcher[_PageAfter, list[Message]](
            self._read_pages_after, max_batch=200, max_in_flight=2, name="catch-up-pages"
        )

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=self.min_size,
                max_size=self.max_size,
                server_settings=self.server_settings,
                command_timeout=self.command_timeout,
                timeout=self.connect_timeout,
                reset=_keep_session,
            )
        except Exception as exc:
            error = _translate(exc)
            if error is None:
                raise
            raise WhisprError(Reason.UNAVAILABLE, "the message store is unreachable") from exc

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            writers, self._writers = self._writers, []
            with contextlib.suppress(Exception):
                for connection in writers:
                    await pool.release(connection)
                await asyncio.wait_for(pool.close(), timeout=5)

    @contextlib.asynccontextmanager
    async def _writer(self) -> AsyncIterator[Any]:
        """A connection for group commit, kept for the next batch instead of released.

        A pool acquire and release costs about as much CPU as running a small
        batch's statement from this side (timeouts, callbacks, bookkeeping),
        and group commit runs one batch after another on a couple of
        connections. A connection that failed, or is left in a transaction,
        goes back to the pool, which resets or replaces it.
        """
        pool = self._pool
        if pool is None:
            raise WhisprError(Reason.UNAVAILABLE, "the store is not open")
        writers = self._writers
        connection = writers.pop() if writers else None
        if connection is None or connection.is_closed():
            if connection is not None:
                with contextlib.suppress(Exception):
                    await pool.release(connection)
            try:
                connection = await pool.acquire(timeout=self.connect_timeout)
            except Exception as exc:
                error = _translate(exc)
                if error is None:
                    raise
                raise error from exc
        healthy = False
        try:
            yield connection
            healthy = True
        except Exception as exc:
            error = _translate(exc)
            if error is None:
                raise
            raise error from exc
        finally:
            if (
                healthy
                and self._pool is pool
                and len(self._writers) < _KEPT_WRITERS
                and not connection.is_closed()
                and not connection.is_in_transaction()
            ):
                self._writers.append(connection)
            else:
                with contextlib.suppress(Exception):
                    await pool.release(connection)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        if self._pool is None:
            raise WhisprError(Reason.UNAVAILABLE, "the store is not open")
        try:
            async with self._pool.acquire(timeout=self.connect_timeout) as connection:
                yield connection
        except Exception as exc:
            error = _translate(exc)
            if error is None:
                raise
            raise error from exc

    async def _fetch(self, query: str, *args: Any) -> list[Any]:
        async with self._connection() as c:
            return list(await c.fetch(query, *args))

    async def _fetchrow(self, query: str, *args: Any) -> Any:
        async with self._connection() as c:
            return await c.fetchrow(query, *args)

    async def _execute(self, query: str, *args: Any) -> str:
        async with self._connection() as c:
            return str(await c.execute(query, *args))

    async def ping(self) -> bool:
        try:
            await self._fetchrow("SELECT 1")
        except WhisprError:
            return False
        return True

    async def migrate(self) -> None:
        """Apply pending migrations in one transaction, one migrator per schema at a time.

        The advisory lock is keyed by the current schema, so nodes starting
        together migrate once (the others wait, then find nothing to do),
        while separate schemas of one database do not wait for each other.
        Migrations may wait for that lock and run long: they get their own
        timeout instead of the per-command one.
        """
        t = _MIGRATE_TIMEOUT
        async with self._connection() as c, c.transaction():
            await c.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
                _MIGRATION_LOCK,
                timeout=t,
            )
            await c.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, "
                "applied_at timestamptz NOT NULL DEFAULT now())",
                timeout=t,
            )
            done = {r[0] for r in await c.fetch("SELECT version FROM schema_migrations")}
            for version, sql in migrations.load("postgres"):
                if version not in done:
                    await c.execute(sql, timeout=t)
                    await c.execute(
                        "INSERT INTO schema_migrations (version) VALUES ($1)", version, timeout=t
                    )

    # -- conversations ---------------------------------------------------------------

    async def create_conversation(
        self, conversation: Conversation, members: Sequence[Member]
    ) -> None:
        _check.conversation(conversation, members)
        async with self._connection() as c, c.transaction():
            await _insert_conversation(c, conversation)
            await _insert_members(c, members)

    async def get_or_create_direct(self, user_a: str, user_b: str, now: float) -> Conversation:
        _check.direct_pair(user_a, user_b, now)
        low, high = sorted((user_a, user_b))
        async with self._connection() as c, c.transaction():
            found = await c.fetchval(
                "SELECT conversation_id FROM direct_pairs WHERE user_low = $1 AND user_high = $2",
                low,
                high,
            )
            if found is None:
                candidate = new_id()
                await _insert_conversation(
                    c,
                    Conversation(id=candidate, kind="direct", created_by=user_a, created_at=now),
                )
                found = await c.fetchval(
                    "INSERT INTO direct_pairs VALUES ($1, $2, $3) ON CONFLICT DO NOTHING "
                    "RETURNING conversation_id",
                    low,
                    high,
                    candidate,
                )
                if found is None:  # another node created it meanwhile: use theirs
                    await c.execute("DELETE FROM conversations WHERE id = $1", candidate)
                    found = await c.fetchval(
                        "SELECT conversation_id FROM direct_pairs WHERE user_low = $1 "
                        "AND user_high = $2",
                        low,
                        high,
                    )
                else:
                    await _insert_members(
                        c,
                        [
                            Member(conversation_id=found, user_id=u, role="member", joined_at=now)
                            for u in (low, high)
                        ],
                    )
        conversation = await self.get_conversation(found)
        assert conversation is not None
        return conversation

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        row = await self._fetchrow(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id = $1", conversation_id
        )
        return _rows.conversation(row) if row is not None else None

    async def _require_conversation(self, conversation_id: str) -> Conversation:
        found = await self.get_conversation(conversation_id)
        if found is None:
            raise WhisprError(Reason.NOT_FOUND, f"no conversation {conversation_id}")
        return found

    async def update_conversation(
        self,
        conversation_id: str,
        *,
        title: str | None = UNCHANGED,
        avatar: str | None = UNCHANGED,
        settings: dict[str, Any] = UNCHANGED,
        description: str | None = UNCHANGED,
    ) -> Conversation:
        """One statement that sets only the fields named.

        Not a read followed by a write of every field: two writers changing
        different fields (another node's actor during a handover) must not
        undo each other's change with the value they read.
        """
        _check.conversation_fields(
            None if title is UNCHANGED else title,
            None if avatar is UNCHANGED else avatar,
            {} if settings is UNCHANGED else settings,
            None if description is UNCHANGED else description,
        )
        row = await self._fetchrow(
            "UPDATE conversations SET "
            "title = CASE WHEN $2 THEN $3 ELSE title END, "
            "avatar = CASE WHEN $4 THEN $5 ELSE avatar END, "
            "settings = CASE WHEN $6 THEN $7::jsonb ELSE settings END, "
            "description = CASE WHEN $8 THEN $9 ELSE description END "
            f"WHERE id = $1 RETURNING {_CONVERSATION_COLUMNS}",
            conversation_id,
            title is not UNCHANGED,
            None if title is UNCHANGED else title,
            avatar is not UNCHANGED,
            None if avatar is UNCHANGED else avatar,
            settings is not UNCHANGED,
            None if settings is UNCHANGED else _rows.dumps(settings),
            description is not UNCHANGED,
            None if description is UNCHANGED else description,
        )
        if row is None:
            raise WhisprError(Reason.NOT_FOUND, f"no conversation {conversation_id}")
        return _rows.conversation(row)

    async def list_members(self, conversation_id: str) -> list[Member]:
        rows = await self._fetch(
            "SELECT * FROM members WHERE conversation_id = $1 ORDER BY joined_at, user_id",
            conversation_id,
        )
        return [_rows.member(r) for r in rows]

    async def versioned_members(self, conversation_id: str) -> tuple[list[Member], int]:
        # One statement, one snapshot: the version is that of exactly these members.
        rows = await self._fetch(
            "SELECT c.member_version, m.* FROM conversations c "
            "LEFT JOIN members m ON m.conversation_id = c.id WHERE c.id = $1 "
            "ORDER BY m.joined_at, m.user_id",
            conversation_id,
        )
        if not rows:
            raise WhisprError(Reason.NOT_FOUND, f"no conversation {conversation_id}")
        members = [_rows.member(r) for r in rows if r["user_id"] is not None]
        return members, int(rows[0]["member_version"])

    async def add_members(self, members: Sequence[Member]) -> None:
        _check.members(members)
        for conversation_id in {m.conversation_id for m in members}:
            await self._require_conversation(conversation_id)
        async with self._connection() as c:
            await _insert_members(c, members)

    async def remove_member(self, conversation_id: str, user_id: str) -> None:
        # Under the conversation's row lock, as a batch of sends is written: the removal and
        # a send of the removed member are ordered, so once this commits none is accepted.
        async with self._connection() as c, c.transaction():
            await c.execute("SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE", conversation_id)
            status = await c.execute(
                "DELETE FROM members WHERE conversation_id = $1 AND user_id = $2",
                conversation_id,
                user_id,
            )
        if status.endswith(" 0"):
            raise WhisprError(Reason.NOT_FOUND, f"{user_id} is not a member")

    async def update_member(
        self,
        conversation_id: str,
        user_id: str,
        *,
        role: str = UNCHANGED,
        muted_until: float | None = UNCHANGED,
        notifications: str = UNCHANGED,
        archived: bool = UNCHANGED,
        pin_order: int | None = UNCHANGED,
    ) -> Member:
        """One statement that sets only the fields named (see ``update_conversation``)."""
        _check.member_fields(
            None if role is UNCHANGED else role,
            None if notifications is UNCHANGED else notifications,
            None if muted_until is UNCHANGED else muted_until,
        )
        _check.member_view(
            None if archived is UNCHANGED else archived,
            None if pin_order is UNCHANGED else pin_order,
        )
        row = await self._fetchrow(
            "UPDATE members SET "
            "role = CASE WHEN $3 THEN $4 ELSE role END, "
            "muted_until = CASE WHEN $5 THEN $6 ELSE muted_until END, "
            "notifications = CASE WHEN $7 THEN $8 ELSE notifications END, "
            "archived = CASE WHEN $9 THEN $10::boolean ELSE archived END, "
            "pin_order = CASE WHEN $11 THEN $12::integer ELSE pin_order END "
            "WHERE conversation_id = $1 AND user_id = $2 RETURNING *",
            conversation_id,
            user_id,
            role is not UNCHANGED,
            None if role is UNCHANGED else role,
            muted_until is not UNCHANGED,
            None if muted_until is UNCHANGED else muted_until,
            notifications is not UNCHANGED,
            None if notifications is UNCHANGED else notifications,
            archived is not UNCHANGED,
            None if archived is UNCHANGED else archived,
            pin_order is not UNCHANGED,
            None if pin_order is UNCHANGED else pin_order,
        )
        if row is None:
            raise WhisprError(Reason.NOT_FOUND, f"{user_id} is not a member")
        return _rows.member(row)

    async def _member(self, conversation_id: str, user_id: str) -> Member:
        row = await self._fetchrow(
            "SELECT * FROM members WHERE conversation_id = $1 AND user_id = $2",
            conversation_id,
            user_id,
        )
        if row is None:
            raise WhisprError(Reason.NOT_FOUND, f"{user_id} is not a member")
        return _rows.member(row)

    async def list_user_conversations(
        self,
        user_id: str,
        limit: int,
        before: float | None = None,
        *,
        before_id: str | None = None,
    ) -> list[ConversationSummary]:
        """Two round trips whatever the page size: the list, then its last messages.

        The list starts from ``members_by_user`` (a user has tens to
        thousands of conversations, never millions), joins each
        conversation by its key and sorts that set by activity; the unread
        count and the last visible message are range scans of one messages
        partition each, on its primary key.
        """
        page = rules.page_limit(limit)
        async with self._connection() as c:
            rows = await c.fetch(
                f"SELECT {', '.join('c.' + x for x in _CONVERSATION_COLUMNS.split(', '))}, "
                "m.role AS member_role, last.seq AS visible_seq, "
                "(SELECT count(*) FROM messages x WHERE x.conversation_id = c.id "
                " AND x.seq > m.read_seq AND x.sender_id <> m.user_id AND NOT x.deleted) "
                "AS unread, "
                "(SELECT count(*) FROM messages x WHERE x.conversation_id = c.id "
                " AND x.seq > m.read_seq AND x.sender_id <> m.user_id AND NOT x.deleted "
                " AND x.metadata -> 'mentions' ? m.user_id) AS mentions "
                "FROM members m JOIN conversations c ON c.id = m.conversation_id "
                "LEFT JOIN LATERAL (SELECT x.seq FROM messages x WHERE x.conversation_id = c.id "
                "AND NOT x.expired "
                f" AND {_not_hidden('x', 'm.user_id')} ORDER BY x.seq DESC LIMIT 1) last ON true "
                "WHERE m.user_id = $1 AND ($2::double precision IS NULL "
                " OR COALESCE(c.last_message_at, c.created_at) < $2 "
                " OR (COALESCE(c.last_message_at, c.created_at) = $2 AND c.id < $4)) "
                "ORDER BY COALESCE(c.last_message_at, c.created_at) DESC, c.id DESC LIMIT $3",
                user_id,
                before,
                page,
                before_id,
            )
            wanted = [(r["id"], r["visible_seq"]) for r in rows if r["visible_seq"] is not None]
            last: dict[tuple[str, int], Message] = {}
            if wanted:
                ids, seqs = [w[0] for w in wanted], [w[1] for w in wanted]
                pairs = "SELECT * FROM unnest($1::text[], $2::bigint[]) AS p(cid, seq)"
                found = await c.fetch(
                    f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE (conversation_id, seq) "
                    f"IN ({pairs})",
                    ids,
                    seqs,
                )
                for message in await _with_reactions(c, found):
                    last[(message.conversation_id, message.seq)] = message
        return [
            ConversationSummary(
                conversation=_rows.conversation(row),
                role=row["member_role"],
                last_message=last.get((row["id"], row["visible_seq"])),
                unread_count=int(row["unread"]),
                mention_count=int(row["mentions"]),
            )
            for row in rows
        ]

    # -- messages ------------------------------------------------------------------------

    async def insert_messages(self, batch: Sequence[Message]) -> list[InsertResult]:
        """Group commit; a message the store refuses is ``invalid`` alone (``_isolate``)."""
        return await _isolate.insert_isolated(self._insert_batch, batch)

    async def _insert_batch(self, batch: Sequence[Message]) -> list[InsertResult]:
        """The batch in one atomic round trip; ``batch`` passed the store's checks."""
        given = [m for m in batch if type(m) is not Unsequenced]
        if len(given) == len(batch):
            return await self._insert_given(batch)
        # Unsequenced messages: the first of each client id goes to the
        # database, which gives it the next seq; later ones in the batch are
        # duplicates of it.
        first: dict[tuple[str, str, str], int] = {}
        fresh: list[Message] = []
        where: list[int] = []  # for each unsequenced message, its index in ``fresh``
        for m in batch:
            if type(m) is Unsequenced:
                key = (m.conversation_id, m.sender_id, m.client_id)
                index = first.get(key)
                if index is None:
                    index = first[key] = len(fresh)
                    fresh.append(m)
                where.append(index)
        # One JSON array, encoded in one call; batch order is the order of the seqs.
        encoded = _batch_encoder.encode(fresh).decode()
        given_rows: list[Any] = []
        for attempt in range(1, _INSERT_ATTEMPTS + 1):
            try:
                async with self._writer() as c:
                    if given:
                        # Both kinds in one batch: one transaction, the given
                        # seqs first, then the next seqs after them.
                        async with c.transaction():
                            given_rows = await c.fetch(_INSERT_BATCH, *_columns(given))
                            appended = await c.fetch(_APPEND_BATCH, encoded)
                    else:
                        appended = await c.fetch(_APPEND_BATCH, encoded)
                break
            except WhisprError as exc:
                if not isinstance(exc.__cause__, _RETRYABLE) or attempt == _INSERT_ATTEMPTS:
                    raise
                await asyncio.sleep(0.01 * attempt)
        seqs = {row[0] - 1: row[1] for row in appended}
        outcome: list[InsertResult | None] = [None] * len(fresh)
        skipped = []
        for index, m in enumerate(fresh):
            seq = seqs.get(index)
            if seq is None:
                skipped.append(m)
            elif seq == 0:  # its sender was not a member when the batch was written
                outcome[index] = InsertResult(status="not_member", message=m)
            elif seq == -1:  # its member_version was not the conversation's then
                outcome[index] = InsertResult(status="members_changed", message=m)
            else:
                outcome[index] = InsertResult(status="inserted", message=_rows.sequenced(m, seq))
        if skipped:  # client ids already stored: their originals, in one lookup
            originals = await self._find_by_client_ids(skipped)
            for index, m in enumerate(fresh):
                if outcome[index] is None:
                    original = originals.get((m.conversation_id, m.sender_id, m.client_id))
                    if original is None:  # cannot happen under the locks; never say "inserted"
                        outcome[index] = InsertResult(status="seq_conflict", message=m)
                    else:
                        outcome[index] = InsertResult(status="duplicate", message=original)
        given_results = iter(await self._classify(given, given_rows) if given else ())
        results: list[InsertResult] = []
        seen: set[int] = set()
        unsequenced = iter(where)
        for m in batch:
            if type(m) is not Unsequenced:
                results.append(next(given_results))
                continue
            index = next(unsequenced)
            result = outcome[index]
            assert result is not None
            if index in seen and result.status == "inserted":
                result = InsertResult(status="duplicate", message=result.message)
            seen.add(index)
            results.append(result)
        return results

    async def _insert_given(self, batch: Sequence[Message]) -> list[InsertResult]:
        """Messages with their seqs: one statement; a taken seq is a ``seq_conflict``."""
        columns = _columns(batch)
        inserted: list[Any] = []
        for attempt in range(1, _INSERT_ATTEMPTS + 1):
            try:
                async with self._writer() as c:
                    inserted = await c.fetch(_INSERT_BATCH, *columns)
                break
            except WhisprError as exc:
                # A deadlock with another node's batch (rows locked in another
                # order) aborts the whole statement, so running it again is safe.
                if not isinstance(exc.__cause__, _RETRYABLE) or attempt == _INSERT_ATTEMPTS:
                    raise
                await asyncio.sleep(0.01 * attempt)
        return await self._classify(batch, inserted)

    async def _classify(
        self, batch: Sequence[Message], inserted: Sequence[Any]
    ) -> list[InsertResult]:
        """The result of each message with a given seq, from the rows the statement wrote."""
        # Each written row is claimed by the first message of the batch it
        # matches; the others are told apart as if the batch ran in order.
        written = Counter(
            (r["conversation_id"], r["seq"], r["sender_id"], r["client_id"]) for r in inserted
        )
        inserted_at: dict[tuple[str, int], int] = {}
        for index, m in enumerate(batch):
            key = (m.conversation_id, m.seq, m.sender_id, m.client_id)
            if written[key] > 0:
                written[key] -= 1
                inserted_at[(m.conversation_id, m.seq)] = index
        leftovers = [
            m for i, m in enumerate(batch) if inserted_at.get((m.conversation_id, m.seq)) != i
        ]
        originals = await self._find_by_client_ids(leftovers) if leftovers else {}
        results = []
        for index, m in enumerate(batch):
            if inserted_at.get((m.conversation_id, m.seq)) == index:
                results.append(InsertResult(status="inserted", message=m))
                continue
            original = originals.get((m.conversation_id, m.sender_id, m.client_id))
            written_later = (
                original is not None
                and inserted_at.get((original.conversation_id, original.seq), -1) > index
            )
            if original is not None and not written_later:
                results.append(InsertResult(status="duplicate", message=original))
            else:
                results.append(InsertResult(status="seq_conflict", message=m))
        return results

    async def _find_by_client_ids(
        self, messages: Sequence[Message]
    ) -> dict[tuple[str, str, str], Message]:
        """The stored messages under the client ids of ``messages``: one round trip."""
        keys = sorted({(m.conversation_id, m.sender_id, m.client_id) for m in messages})
        async with self._connection() as c:
            rows = await c.fetch(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE "
                "(conversation_id, sender_id, client_id) IN (SELECT * FROM "
                "unnest($1::text[], $2::text[], $3::text[]))",
                [k[0] for k in keys],
                [k[1] for k in keys],
                [k[2] for k in keys],
            )
            messages = await _with_reactions(c, rows)
        return {(m.conversation_id, m.sender_id, m.client_id): m for m in messages}

    async def find_by_client_id(
        self, conversation_id: str, sender_id: str, client_id: str
    ) -> Message | None:
        seq = await self._fetchrow(
            "SELECT seq FROM messages WHERE conversation_id = $1 AND sender_id = $2 "
            "AND client_id = $3",
            conversation_id,
            sender_id,
            client_id,
        )
        if seq is None:
            return None
        # An expired message's stub too: a retried send is its duplicate, never a new one.
        page = await self._messages(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq = $2",
            conversation_id,
            conversation_id,
            seq[0],
        )
        return page[0] if page else None

    async def get_message(self, conversation_id: str, seq: int) -> Message | None:
        page = await self._messages(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq = $2 "
            "AND NOT expired",
            conversation_id,
            conversation_id,
            seq,
        )
        return page[0] if page else None

    async def _messages(self, query: str, conversation_id: str, *args: Any) -> list[Message]:
        async with self._connection() as c:
            rows = await c.fetch(query, *args)
            rows = sorted(rows, key=lambda r: r["seq"])
            reactions = (
                _rows.reactions_by_seq(
                    await c.fetch(
                        "SELECT seq, emoji, user_id FROM reactions WHERE conversation_id = $1 "
                        "AND seq = ANY($2::bigint[]) ORDER BY seq, emoji, created_at, user_id",
                        conversation_id,
                        [r["seq"] for r in rows],
                    )
                )
                if rows
                else {}
            )
        return [_rows.message(r, reactions.get(r["seq"])) for r in rows]

    async def _require_message(self, conversation_id: str, seq: int) -> Message:
        found = await self.get_message(conversation_id, seq)
        if found is None:
            raise WhisprError(Reason.NOT_FOUND, f"no message {seq} in {conversation_id}")
        return found

    async def last_seq(self, conversation_id: str) -> int:
        row = await self._fetchrow(
            "SELECT COALESCE(max(seq), 0) FROM messages WHERE conversation_id = $1",
            conversation_id,
        )
        return int(row[0])

    async def memberships(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        if not pairs:
            return set()
        rows = await self._fetch(
            "SELECT m.conversation_id, m.user_id FROM members m "
            "JOIN unnest($1::text[], $2::text[]) AS p(conversation_id, user_id) "
            "ON m.conversation_id = p.conversation_id AND m.user_id = p.user_id",
            [c for c, _ in pairs],
            [u for _, u in pairs],
        )
        return {(row[0], row[1]) for row in rows}

    async def last_seqs(self, conversation_ids: Sequence[str]) -> dict[str, int]:
        if not conversation_ids:
            return {}
        rows = await self._fetch(
            "SELECT id, last_seq FROM conversations WHERE id = ANY($1::text[])",
            list(conversation_ids),
        )
        return {row[0]: int(row[1]) for row in rows}

    async def page_messages(
        self,
        conversation_id: str,
        *,
        before_seq: int | None = None,
        after_seq: int | None = None,
        limit: int = 50,
        viewer_id: str | None = None,
        filters: MessageFilters | None = None,
    ) -> list[Message]:
        for bound, field in ((before_seq, "before_seq"), (after_seq, "after_seq")):
            if bound is not None:
                _check.cursor(bound, field)
        page = rules.page_limit(limit)
        if filters is not None:
            filters = None if check_filters(filters).empty else filters
        if after_seq is not None and before_seq is None and filters is None:
            return await self._pages_after.submit((conversation_id, after_seq, page, viewer_id))
        order = "ASC" if after_seq is not None else "DESC"
        return await self._messages(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE conversation_id = $1 "
            "AND NOT expired AND ($2::bigint IS NULL OR seq < $2) "
            "AND ($3::bigint IS NULL OR seq > $3) "
            f"AND ($4::text IS NULL OR {_not_hidden('m', '$4')}) AND {_filtered(6)} "
            f"ORDER BY seq {order} LIMIT $5",
            conversation_id,
            conversation_id,
            before_seq,
            after_seq,
            viewer_id,
            page,
            *_filter_args(filters),
        )

    async def search_messages(self, query: SearchQuery) -> list[SearchHit]:
        check_query(query)
        after = query.after
        async with self._connection() as c:
            rows = await c.fetch(
                _SEARCH,
                query.viewer_id,
                query.conversation_id,
                query.text,
                *_filter_args(query.filters),
                query.has_attachment,
                after.rank if after else None,
                after.conversation_id if after else None,
                after.seq if after else None,
                rules.page_limit(query.limit),
            )
            messages = await _with_reactions(c, rows)
        return [
            _rows.search_hit(message, row["rank"], row["snippet"])
            for row, message in zip(rows, messages, strict=True)
        ]

    async def _read_pages_after(self, requests: Sequence[_PageAfter]) -> list[list[Message]]:
        """A batch of catch-up pages: the messages in one statement, their reactions in one."""
        columns = list(zip(*requests, strict=True))
        async with self._connection() as c:
            rows = await c.fetch(_PAGES_AFTER, *columns)
            messages = await _with_reactions(c, rows)
        pages: list[list[Message]] = [[] for _ in requests]
        for r, message in zip(rows, messages, strict=True):
            pages[r["i"] - 1].append(message)
        return pages

    async def _update_message(
        self, conversation_id: str, seq: int, query: str, *args: Any
    ) -> Message:
        """Run an UPDATE of one message that skips tombstones; the message after it."""
        status = await self._execute(query, conversation_id, seq, *args)
        updated = await self._require_message(conversation_id, seq)
        if status.endswith(" 0") and updated.deleted:
            raise WhisprError(Reason.INVALID, f"message {seq} was deleted", field="seq")
        return updated

    async def edit_message(
        self, conversation_id: str, seq: int, content: str, edited_at: float
    ) -> Message:
        _check.edit(content, edited_at)
        return await self._update_message(
            conversation_id,
            seq,
            "UPDATE messages SET content = $3, edited_at = $4 WHERE conversation_id = $1 "
            "AND seq = $2 AND NOT deleted",
            content,
            edited_at,
        )

    async def delete_message(self, conversation_id: str, seq: int) -> Message:
        """Tombstone: content, attachments, pin and reactions go; seq and sender stay.

        Idempotent: deleting a tombstone returns it. The reactions go in the
        same transaction, so nobody sees a tombstone with reactions.
        """
        async with self._connection() as c, c.transaction():
            await c.execute(
                "UPDATE messages SET deleted = true, content = '', attachments = '[]', "
                "pinned = false WHERE conversation_id = $1 AND seq = $2",
                conversation_id,
                seq,
            )
            await c.execute(
                "DELETE FROM reactions WHERE conversation_id = $1 AND seq = $2",
                conversation_id,
                seq,
            )
        return await self._require_message(conversation_id, seq)

    async def hide_message(self, conversation_id: str, seq: int, user_id: str) -> None:
        _check.name(user_id, "user_id")
        await self._require_message(conversation_id, seq)
        await self._execute(
            "INSERT INTO hidden_messages VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            conversation_id,
            seq,
            user_id,
        )

    async def add_reaction(
        self, conversation_id: str, seq: int, user_id: str, emoji: str
    ) -> Message:
        """Idempotent; refused on a tombstone.

        The insert reads the message ``FOR SHARE``: a concurrent delete
        either commits first (and this finds a tombstone and adds nothing)
        or waits for this to commit (and then removes the reaction with the
        others).
        """
        _check.name(user_id, "user_id")
        _check.name(emoji, "emoji")
        status = await self._execute(
            "INSERT INTO reactions (conversation_id, seq, emoji, user_id, created_at) "
            "SELECT $1, $2, $3, $4, extract(epoch FROM clock_timestamp()) FROM messages "
            "WHERE conversation_id = $1 AND seq = $2 AND NOT deleted FOR SHARE "
            "ON CONFLICT DO NOTHING",
            conversation_id,
            seq,
            emoji,
            user_id,
        )
        updated = await self._require_message(conversation_id, seq)
        if status.endswith(" 0") and updated.deleted:
            raise WhisprError(Reason.INVALID, f"message {seq} was deleted", field="seq")
        return updated

    async def remove_reaction(
        self, conversation_id: str, seq: int, user_id: str, emoji: str
    ) -> Message:
        await self._require_message(conversation_id, seq)
        await self._execute(
            "DELETE FROM reactions WHERE conversation_id = $1 AND seq = $2 AND emoji = $3 "
            "AND user_id = $4",
            conversation_id,
            seq,
            emoji,
            user_id,
        )
        return await self._require_message(conversation_id, seq)

    async def set_pinned(self, conversation_id: str, seq: int, pinned: bool) -> Message:
        """Pinning a tombstone is refused; unpinning one is a no-op (it is never pinned)."""
        if not pinned:
            await self._execute(
                "UPDATE messages SET pinned = false WHERE conversation_id = $1 AND seq = $2",
                conversation_id,
                seq,
            )
            return await self._require_message(conversation_id, seq)
        return await self._update_message(
            conversation_id,
            seq,
            "UPDATE messages SET pinned = true WHERE conversation_id = $1 AND seq = $2 "
            "AND NOT deleted",
        )

    async def list_pinned(self, conversation_id: str) -> list[Message]:
        return await self._messages(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND pinned "
            "ORDER BY seq",
            conversation_id,
            conversation_id,
        )

    async def list_thread(
        self,
        conversation_id: str,
        root_seq: int,
        *,
        after_seq: int = 0,
        limit: int = 50,
        viewer_id: str | None = None,
    ) -> list[Message]:
        _check.cursor(root_seq, "root_seq")
        _check.cursor(after_seq, "after_seq")
        return await self._messages(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE conversation_id = $1 "
            "AND reply_to = $2 AND seq > $3 AND NOT expired "
            f"AND ($4::text IS NULL OR {_not_hidden('m', '$4')}) ORDER BY seq LIMIT $5",
            conversation_id,
            conversation_id,
            root_seq,
            after_seq,
            viewer_id,
            rules.page_limit(limit),
        )

    # -- cursors -------------------------------------------------------------------------

    async def mark_read(self, conversation_id: str, user_id: str, seq: int) -> int:
        _check.cursor(seq)
        row = await self._fetchrow(
            "UPDATE members SET read_seq = GREATEST(read_seq, $3) WHERE conversation_id = $1 "
            "AND user_id = $2 RETURNING read_seq",
            conversation_id,
            user_id,
            seq,
        )
        if row is None:
            raise WhisprError(Reason.NOT_FOUND, f"{user_id} is not a member")
        return int(row[0])

    async def mark_delivered(
        self, conversation_id: str, user_id: str, device_id: str, seq: int
    ) -> int:
        _check.cursor(seq)
        _check.name(device_id, "device_id")
        await self._member(conversation_id, user_id)
        row = await self._fetchrow(
            "INSERT INTO delivered_cursors VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (conversation_id, user_id, device_id) "
            "DO UPDATE SET seq = GREATEST(delivered_cursors.seq, excluded.seq) RETURNING seq",
            conversation_id,
            user_id,
            device_id,
            seq,
        )
        return int(row[0])

    async def get_read_cursors(self, conversation_id: str) -> dict[str, int]:
        rows = await self._fetch(
            "SELECT user_id, read_seq FROM members WHERE conversation_id = $1", conversation_id
        )
        return {r[0]: int(r[1]) for r in rows}

    async def get_delivery_cursors(
        self, conversation_id: str, user_id: str | None = None
    ) -> list[DeliveryCursor]:
        rows = await self._fetch(
            "SELECT conversation_id, user_id, device_id, seq FROM delivered_cursors "
            "WHERE conversation_id = $1 AND ($2::text IS NULL OR user_id = $2) "
            "ORDER BY user_id, device_id",
            conversation_id,
            user_id,
        )
        return [_rows.delivery_cursor(r) for r in rows]

    async def unread_counts(self, user_id: str) -> dict[str, int]:
        rows = await self._fetch(
            "SELECT m.conversation_id, (SELECT count(*) FROM messages x WHERE "
            "x.conversation_id = m.conversation_id AND x.seq > m.read_seq AND "
            "x.sender_id <> m.user_id AND NOT x.deleted) FROM members m WHERE m.user_id = $1",
            user_id,
        )
        return {r[0]: int(r[1]) for r in rows}

    async def mention_counts(self, user_id: str) -> dict[str, int]:
        rows = await self._fetch(
            "SELECT m.conversation_id, (SELECT count(*) FROM messages x WHERE "
            "x.conversation_id = m.conversation_id AND x.seq > m.read_seq AND "
            "x.sender_id <> m.user_id AND NOT x.deleted AND x.metadata -> 'mentions' ? m.user_id) "
            "FROM members m WHERE m.user_id = $1",
            user_id,
        )
        return {r[0]: int(r[1]) for r in rows if r[1]}

    # -- the audit log (whispr/audit/; not part of the actors' Store port) ----------------

    async def append_audit(self, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        columns = list(zip(*(_audit.params(r) for r in records), strict=True))
        await self._execute(_AUDIT_INSERT, *columns)

    async def audit_page(
        self,
        *,
        since: float,
        until: float,
        user_id: str | None = None,
        kinds: Sequence[AuditKind] = (),
        after: AuditCursor | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        sql, values = _audit.page_query(
            _AUDIT_SELECT,
            lambda n: f"${n}",
            since=since,
            until=until,
            user_id=user_id,
            kinds=kinds,
            after=after,
            limit=limit,
        )
        return [_audit.record(r) for r in await self._fetch(sql, *values)]

    async def purge_audit(self, before: float) -> int:
        total = 0
        while True:
            deleted = await self._fetchrow(_AUDIT_PURGE, before, _audit.PURGE_BATCH)
            total += int(deleted[0])
            if deleted[0] < _audit.PURGE_BATCH:
                return total

    # -- token revocations and presence settings (whispr/revocations.py,
    # whispr/user_presence.py; not part of the actors' Store port) -------------------------

    async def add_revocation(self, revocation: Revocation) -> None:
        await self._execute(_accounts.INSERT_REVOCATION, *_accounts.params(revocation))

    async def revocations_since(self, at: float, now: float) -> list[Revocation]:
        rows = await self._fetch(_accounts.REVOCATIONS_SINCE, at, now)
        return [_accounts.revocation(r) for r in rows]

    async def contacts(self, user_id: str, limit: int) -> list[str]:
        return [r[0] for r in await self._fetch(_accounts.CONTACTS, user_id, limit)]

    async def hidden_last_seen(self, user_ids: Sequence[str]) -> set[str]:
        rows = await self._fetch(
            "SELECT user_id FROM presence_privacy WHERE user_id = ANY($1::text[]) "
            "AND hide_last_seen",
            list(user_ids),
        )
        return {r[0] for r in rows}

    async def set_hide_last_seen(self, user_id: str, hide: bool) -> None:
        await self._execute(
            "INSERT INTO presence_privacy (user_id, hide_last_seen) VALUES ($1, $2) "
            "ON CONFLICT (user_id) DO UPDATE SET hide_last_seen = EXCLUDED.hide_last_seen",
            user_id,
            hide,
        )

    # -- scheduled messages and expiries (actors/scheduling.py) ------------------------------

    async def expire_message(self, conversation_id: str, seq: int) -> bool:
        """One statement: the message becomes a stub, its reactions and hidden marks go
        (atomic, whoever else writes)."""
        _check.name(conversation_id, "conversation_id")
        _check.cursor(seq)
        row = await self._fetchrow(_EXPIRE, conversation_id, seq)
        return bool(row[0])

    async def add_schedule(self, schedule: Schedule) -> Schedule:
        _schedules.check_schedule(schedule)
        row = await self._fetchrow(
            f"INSERT INTO scheduled_messages ({_SCHEDULE_INSERT}) "
            "VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $6) "
            "ON CONFLICT (conversation_id, sender_id, client_id) DO NOTHING "
            f"RETURNING {_SCHEDULE_SELECT}",
            schedule.id,
            schedule.conversation_id,
            schedule.sender_id,
            schedule.draft.client_id,
            _schedules.draft_json(schedule.draft),
            schedule.send_at,
            schedule.created_at,
        )
        if row is None:  # the same client id again: the stored schedule
            row = await self._fetchrow(
                f"SELECT {_SCHEDULE_SELECT} FROM scheduled_messages WHERE conversation_id = $1 "
                "AND sender_id = $2 AND client_id = $3",
                schedule.conversation_id,
                schedule.sender_id,
                schedule.draft.client_id,
            )
            if row is None:  # taken and sent between the two statements
                raise WhisprError(Reason.CONFLICT, "this schedule was already sent")
        return _schedules.schedule(row)

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        _check.name(schedule_id, "schedule_id")
        row = await self._fetchrow(
            f"SELECT {_SCHEDULE_SELECT} FROM scheduled_messages WHERE id = $1", schedule_id
        )
        return None if row is None else _schedules.schedule(row)

    async def list_schedules(self, conversation_id: str, sender_id: str) -> list[Schedule]:
        rows = await self._fetch(
            f"SELECT {_SCHEDULE_SELECT} FROM scheduled_messages WHERE conversation_id = $1 "
            "AND sender_id = $2 ORDER BY send_at, id",
            conversation_id,
            sender_id,
        )
        return [_schedules.schedule(row) for row in rows]

    async def update_schedule(
        self, schedule_id: str, *, draft: Draft | None = None, send_at: float | None = None
    ) -> Schedule:
        current = await self.get_schedule(schedule_id)
        if current is None:
            raise WhisprError(Reason.NOT_FOUND, f"no schedule {schedule_id}", field="schedule_id")
        if draft is not None:
            _schedules.check_draft(
                draft, current.conversation_id, current.sender_id, current.created_at
            )
        if send_at is not None:
            _schedules.check_times(send_at)
        row = await self._fetchrow(
            "UPDATE scheduled_messages SET draft = COALESCE($2::jsonb, draft), "
            "send_at = COALESCE($3, send_at), due_at = COALESCE($3, due_at) "
            f"WHERE id = $1 AND attempts = 0 RETURNING {_SCHEDULE_SELECT}",
            schedule_id,
            None if draft is None else _schedules.draft_json(draft),
            send_at,
        )
        if row is None:
            raise await self._schedule_refusal(schedule_id)
        return _schedules.schedule(row)

    async def cancel_schedule(self, schedule_id: str) -> None:
        _check.name(schedule_id, "schedule_id")
        status = await self._execute(
            "DELETE FROM scheduled_messages WHERE id = $1 AND attempts = 0", schedule_id
        )
        if status.endswith(" 0"):
            raise await self._schedule_refusal(schedule_id)

    async def _schedule_refusal(self, schedule_id: str) -> WhisprError:
        """Why a schedule could not change: gone (``not_found``) or claimed (``conflict``)."""
        if await self.get_schedule(schedule_id) is None:
            return WhisprError(Reason.NOT_FOUND, f"no schedule {schedule_id}", field="schedule_id")
        return _schedules.conflict(schedule_id)

    async def claim_schedules(self, now: float, lease_s: float, limit: int) -> list[Schedule]:
        rows = await self._fetch(
            "UPDATE scheduled_messages s SET due_at = $1 + $2, attempts = s.attempts + 1 "
            "FROM (SELECT id FROM scheduled_messages WHERE due_at <= $1 ORDER BY due_at, id "
            "LIMIT $3 FOR UPDATE SKIP LOCKED) d WHERE s.id = d.id "
            f"RETURNING {', '.join('s.' + c for c in _SCHEDULE_SELECT.split(', '))}",
            now,
            lease_s,
            limit,
        )
        claimed = [_schedules.schedule(row) for row in rows]
        return sorted(claimed, key=lambda s: (s.send_at, s.id))

    async def finish_schedule(self, schedule_id: str) -> None:
        await self._execute("DELETE FROM scheduled_messages WHERE id = $1", schedule_id)

    async def claim_expiries(self, now: float, lease_s: float, limit: int) -> list[Expiry]:
        rows = await self._fetch(
            "UPDATE message_expiries e SET due_at = $1 + $2 "
            "FROM (SELECT conversation_id, seq FROM message_expiries WHERE due_at <= $1 "
            "ORDER BY due_at, conversation_id, seq LIMIT $3 FOR UPDATE SKIP LOCKED) d "
            "WHERE e.conversation_id = d.conversation_id AND e.seq = d.seq "
            "RETURNING e.conversation_id, e.seq, e.expires_at",
            now,
            lease_s,
            limit,
        )
        return sorted((_schedules.expiry(row) for row in rows), key=lambda e: e.expires_at)

    async def finish_expiry(self, conversation_id: str, seq: int) -> None:
        await self._execute(
            "DELETE FROM message_expiries WHERE conversation_id = $1 AND seq = $2",
            conversation_id,
            seq,
        )

    async def next_due(self) -> float | None:
        row = await self._fetchrow(
            "SELECT LEAST((SELECT due_at FROM scheduled_messages ORDER BY due_at LIMIT 1), "
            "(SELECT due_at FROM message_expiries ORDER BY due_at LIMIT 1))"
        )
        return None if row[0] is None else float(row[0])


#: An expiry in one statement: the stub, and what else of the message goes.
_EXPIRE = """
WITH stub AS (
    UPDATE messages SET expired = true, deleted = true, content = '', attachments = '[]',
        metadata = '{}', pinned = false, edited_at = NULL
    WHERE conversation_id = $1 AND seq = $2 AND NOT expired RETURNING seq
), r AS (DELETE FROM reactions WHERE conversation_id = $1 AND seq = $2),
h AS (DELETE FROM hidden_messages WHERE conversation_id = $1 AND seq = $2)
SELECT count(*) FROM stub
"""
_SCHEDULE_INSERT = "id, conversation_id, sender_id, client_id, draft, send_at, created_at, due_at"
_SCHEDULE_SELECT = (
    "id, conversation_id, sender_id, draft::text AS draft, send_at, created_at, attempts"
)


_AUDIT_INSERT = f"""
INSERT INTO audit_log ({", ".join(_audit.COLUMNS)})
SELECT id, at, kind, user_id, actor, reason, source, node, peer, details::jsonb
FROM unnest($1::text[], $2::double precision[], $3::text[], $4::text[], $5::text[],
    $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])
    AS t({", ".join(_audit.COLUMNS)})
ON CONFLICT (id) DO NOTHING
"""
_AUDIT_SELECT = (
    "SELECT id, at, kind, user_id, actor, reason, source, node, peer, details::text FROM audit_log"
)
#: One batch of the retention job: the oldest rows past the limit, by the (at) index.
_AUDIT_PURGE = """
WITH gone AS (
    DELETE FROM audit_log WHERE id IN (
        SELECT id FROM audit_log WHERE at < $1 ORDER BY at LIMIT $2
    ) RETURNING 1
)
SELECT count(*) FROM gone
"""


async def _insert_conversation(connection: Any, c: Conversation) -> None:
    await connection.execute(
        "INSERT INTO conversations (id, kind, title, avatar, created_by, created_at, last_seq, "
        "last_message_at, settings) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)",
        *_rows.conversation_params(c),
    )


async def _insert_members(connection: Any, members: Sequence[Member]) -> None:
    await connection.executemany(
        "INSERT INTO members (conversation_id, user_id, role, joined_at, muted_until, "
        "notifications, read_seq, archived, pin_order) VALUES ($1, $2, $3, $4, $5, $6, $7, "
        "$8, $9) "
        "ON CONFLICT (conversation_id, user_id) DO NOTHING",
        [_rows.member_params(m) for m in members],
    )
