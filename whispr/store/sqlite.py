"""``SqliteStore``: the embedded store, for a first run and for development.

One SQLite file in WAL mode, one connection (aiosqlite runs it on its own
thread), so writes are serialised by construction. The contract is the
PostgreSQL store's, checked by the same test suite; what differs: no
partitioning, JSON kept as text, and one node only (a file is not shared
between machines).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
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
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    MessageFilters,
    SearchHit,
    SearchQuery,
    as_times,
    check_filters,
    check_query,
)
from whispr.audit.record import AuditCursor, AuditKind, AuditRecord
from whispr.revocations import Revocation
from whispr.store import _accounts, _audit, _check, _isolate, _rows, _schedules, migrations
from whispr.store.e2e_sqlite import SqliteKeys

__all__ = ["SqliteStore"]

log = structlog.get_logger("whispr.store")

#: Ids per ``IN (...)`` list: well under SQLite's limit on a statement's variables.
_IN_CHUNK = 500

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


class _TaskLock:
    """A lock a task may take again while holding it.

    The store has one connection: a transaction of one coroutine must not
    interleave with the statements of another, and public methods call each
    other.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if self._owner is not task:
            await self._lock.acquire()
            self._owner = task
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._lock.release()


def _translate(exc: sqlite3.Error | ValueError) -> WhisprError:
    """The catalogue's error for a driver exception, in Whispr's words (the driver's,
    which quote the database, are logged here and never reach a client)."""
    if isinstance(exc, sqlite3.IntegrityError):
        if "CHECK constraint" in str(exc):
            error = WhisprError(Reason.INVALID, "the message store cannot hold this value")
        else:
            error = WhisprError(Reason.CONFLICT, "this conflicts with stored data")
    else:
        error = WhisprError(Reason.UNAVAILABLE, "the message store is unavailable; try again")
    log.warning(
        "sqlite error", reason=error.reason.value, error_type=type(exc).__name__, error=str(exc)
    )
    return error


def _serialized(method: F) -> F:
    @functools.wraps(method)
    async def serialized(self: SqliteStore, *args: Any, **kwargs: Any) -> Any:
        async with self._lock.hold():
            try:
                return await method(self, *args, **kwargs)
            except (sqlite3.Error, ValueError) as exc:
                # ValueError: aiosqlite's "no active connection" after a close.
                raise _translate(exc) from exc

    return serialized  # type: ignore[return-value]


_MESSAGE_COLUMNS = (
    "conversation_id, seq, id, client_id, sender_id, kind, content, attachments, reply_to, "
    "created_at, edited_at, deleted, pinned, metadata"
)


#: Filters of a page or a search on the message row ``m``: sender, kind, since (included),
#: until (excluded); each parameter given twice (NULL: no filter).
_FILTERED = (
    "(? IS NULL OR m.sender_id = ?) AND (? IS NULL OR m.kind = ?) "
    "AND (? IS NULL OR m.created_at >= ?) AND (? IS NULL OR m.created_at < ?)"
)


def _filter_params(filters: MessageFilters | None) -> list[Any]:
    if filters is None:
        return [None] * 8
    values = (filters.sender_id, filters.kind, *as_times(filters))
    return [v for value in values for v in (value, value)]


#: FTS5 tokens as its unicode61 tokenizer makes them: runs of letters and digits.
_WORDS = re.compile(r"[^\W_]+")


def _match(text: str) -> str:
    """The FTS5 query for search text: every word, quoted (no FTS5 syntax from users), all
    required, as PostgreSQL's ``plainto_tsquery``."""
    return " ".join(f'"{word}"' for word in _WORDS.findall(text))


#: A search (actors/search.py), ranked by bm25 (negated: higher is better, as on
#: PostgreSQL). Materialized so that the cursor's condition on the rank runs on the ranked
#: rows (an auxiliary function cannot be used in a WHERE).
_SEARCH = f"""
WITH hits AS MATERIALIZED (
    SELECT m.rowid AS row_id, -bm25(messages_fts) AS rank,
           snippet(messages_fts, 0, '{HIGHLIGHT_START}', '{HIGHLIGHT_END}', '…', 24) AS snippet
    FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid
    WHERE messages_fts MATCH ?
      AND m.conversation_id IN (SELECT conversation_id FROM members WHERE user_id = ?)
      AND (? IS NULL OR m.conversation_id = ?)
      AND {_FILTERED}
      AND (? IS NULL OR (m.attachments <> '[]') = ?)
      AND m.seq NOT IN (SELECT seq FROM hidden_messages h
                        WHERE h.conversation_id = m.conversation_id AND h.user_id = ?)
)
SELECT {", ".join("m." + c.strip() for c in _MESSAGE_COLUMNS.split(","))}, h.rank, h.snippet
FROM hits h JOIN messages m ON m.rowid = h.row_id
WHERE ? IS NULL OR h.rank < ? OR (h.rank = ? AND (
    m.conversation_id > ? OR (m.conversation_id = ? AND m.seq < ?)))
ORDER BY h.rank DESC, m.conversation_id, m.seq DESC
LIMIT ?
"""


class SqliteStore(SqliteKeys):
    """The :class:`actors.ports.Store` on one SQLite file (and the end-to-end
    :class:`actors.e2e.ports.KeyStore`, :mod:`whispr.store.e2e_sqlite`)."""

    _translate_error = staticmethod(_translate)

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = _TaskLock()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise WhisprError(Reason.UNAVAILABLE, "the store is not open")
        return self._db

    async def open(self) -> None:
        if self.path != ":memory:":
            try:  # the embedded default must work on a first run: make its folder
                await asyncio.to_thread(_make_folder, self.path)
            except OSError as exc:
                raise WhisprError(Reason.UNAVAILABLE, f"cannot open {self.path}: {exc}") from exc
        try:
            db = await aiosqlite.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            await asyncio.sleep(0.05)  # let aiosqlite's thread finish before the loop may close
            raise WhisprError(Reason.UNAVAILABLE, f"cannot open {self.path}: {exc}") from exc
        try:
            db.row_factory = aiosqlite.Row
            await db.execute("PRAGMA journal_mode=WAL")
            # FULL: a send is acknowledged once durable, power loss included;
            # group commit pays one fsync per batch, not per message.
            await db.execute("PRAGMA synchronous=FULL")
            await db.execute("PRAGMA foreign_keys=ON")
            await db.execute("PRAGMA busy_timeout=5000")
        except sqlite3.Error as exc:
            await db.close()
            raise WhisprError(Reason.UNAVAILABLE, f"cannot open {self.path}: {exc}") from exc
        self._db = db

    async def _all(self, query: str, parameters: Sequence[Any] = ()) -> list[Any]:
        return list(await self.db.execute_fetchall(query, parameters))

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @_serialized
    async def ping(self) -> bool:
        try:
            await self.db.execute("SELECT 1")
        except (sqlite3.Error, WhisprError, ValueError):
            return False
        return True

    @_serialized
    async def migrate(self) -> None:
        db = self.db
        await db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)"
        )
        for version, sql in migrations.load("sqlite"):
            # Whether it is pending is read under the write lock (BEGIN
            # IMMEDIATE): another process on the same file (``whispr
            # migrate`` next to a starting node) may have applied it meanwhile.
            await db.execute("BEGIN IMMEDIATE")
            try:
                applied = await self._all(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
                )
                if not applied:
                    await _run_script(db, sql)
                    await db.execute("INSERT INTO schema_migrations VALUES (?)", (version,))
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise

    # -- conversations ---------------------------------------------------------------

    @_serialized
    async def create_conversation(
        self, conversation: Conversation, members: Sequence[Member]
    ) -> None:
        _check.conversation(conversation, members)
        db = self.db
        await db.execute("BEGIN IMMEDIATE")
        try:
            await self._insert_conversation(conversation)
            await self._insert_members(members)
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise

    async def _insert_conversation(self, c: Conversation) -> None:
        await self.db.execute(
            "INSERT INTO conversations (id, kind, title, avatar, created_by, created_at, "
            "last_seq, last_message_at, settings) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _rows.conversation_params(c),
        )

    async def _insert_members(self, members: Sequence[Member]) -> None:
        await self.db.executemany(
            "INSERT INTO members (conversation_id, user_id, role, joined_at, muted_until, "
            "notifications, read_seq, archived, pin_order) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (conversation_id, user_id) DO NOTHING",
            [_rows.member_params(m) for m in members],
        )

    @_serialized
    async def get_or_create_direct(self, user_a: str, user_b: str, now: float) -> Conversation:
        _check.direct_pair(user_a, user_b, now)
        low, high = sorted((user_a, user_b))
        db = self.db
        await db.execute("BEGIN IMMEDIATE")
        try:
            rows = await self._all(
                "SELECT conversation_id FROM direct_pairs WHERE user_low = ? AND user_high = ?",
                (low, high),
            )
            if rows:
                conversation_id = rows[0][0]
            else:
                conversation_id = new_id()
                created = Conversation(
                    id=conversation_id, kind="direct", created_by=user_a, created_at=now
                )
                await self._insert_conversation(created)
                await self._insert_members(
                    [
                        Member(
                            conversation_id=conversation_id, user_id=u, role="member", joined_at=now
                        )
                        for u in (low, high)
                    ]
                )
                await db.execute(
                    "INSERT INTO direct_pairs VALUES (?, ?, ?)", (low, high, conversation_id)
                )
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        found = await self.get_conversation(conversation_id)
        assert found is not None
        return found

    @_serialized
    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        rows = await self._all("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        return _rows.conversation(rows[0]) if rows else None

    async def _require_conversation(self, conversation_id: str) -> Conversation:
        found = await self.get_conversation(conversation_id)
        if found is None:
            raise WhisprError(Reason.NOT_FOUND, f"no conversation {conversation_id}")
        return found

    @_serialized
    async def update_conversation(
        self,
        conversation_id: str,
        *,
        title: str | None = UNCHANGED,
        avatar: str | None = UNCHANGED,
        settings: dict[str, Any] = UNCHANGED,
        description: str | None = UNCHANGED,
    ) -> Conversation:
        _check.conversation_fields(
            None if title is UNCHANGED else title,
            None if avatar is UNCHANGED else avatar,
            {} if settings is UNCHANGED else settings,
            None if description is UNCHANGED else description,
        )
        current = await self._require_conversation(conversation_id)
        await self.db.execute(
            "UPDATE conversations SET title = ?, avatar = ?, settings = ?, description = ? "
            "WHERE id = ?",
            (
                current.title if title is UNCHANGED else title,
                current.avatar if avatar is UNCHANGED else avatar,
                _rows.dumps(current.settings if settings is UNCHANGED else settings),
                current.description if description is UNCHANGED else description,
                conversation_id,
            ),
        )
        return await self._require_conversation(conversation_id)

    @_serialized
    async def list_members(self, conversation_id: str) -> list[Member]:
        rows = await self._all(
            "SELECT * FROM members WHERE conversation_id = ? ORDER BY joined_at, user_id",
            (conversation_id,),
        )
        return [_rows.member(r) for r in rows]

    @_serialized
    async def versioned_members(self, conversation_id: str) -> tuple[list[Member], int]:
        # One statement, one snapshot: the version is that of exactly these members.
        rows = await self._all(
            "SELECT c.member_version AS member_version, m.* FROM conversations c "
            "LEFT JOIN members m ON m.conversation_id = c.id WHERE c.id = ? "
            "ORDER BY m.joined_at, m.user_id",
            (conversation_id,),
        )
        if not rows:
            raise WhisprError(Reason.NOT_FOUND, f"no conversation {conversation_id}")
        members = [_rows.member(r) for r in rows if r["user_id"] is not None]
        return members, int(rows[0]["member_version"])

    @_serialized
    async def add_members(self, members: Sequence[Member]) -> None:
        _check.members(members)
        for conversation_id in {m.conversation_id for m in members}:
            await self._require_conversation(conversation_id)
        await self._insert_members(members)

    @_serialized
    async def remove_member(self, conversation_id: str, user_id: str) -> None:
        cursor = await self.db.execute(
            "DELETE FROM members WHERE conversation_id = ? AND user_id = ?",
            (conversation_id, user_id),
        )
        if cursor.rowcount == 0:
            raise WhisprError(Reason.NOT_FOUND, f"{user_id} is not a member")

    @_serialized
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
        _check.member_fields(
            None if role is UNCHANGED else role,
            None if notifications is UNCHANGED else notifications,
            None if muted_until is UNCHANGED else muted_until,
        )
        _check.member_view(
            None if archived is UNCHANGED else archived,
            None if pin_order is UNCHANGED else pin_order,
        )
        current = await self._member(conversation_id, user_id)
        await self.db.execute(
            "UPDATE members SET role = ?, muted_until = ?, notifications = ?, archived = ?, "
            "pin_order = ? WHERE conversation_id = ? AND user_id = ?",
            (
                current.role if role is UNCHANGED else role,
                current.muted_until if muted_until is UNCHANGED else muted_until,
                current.notifications if notifications is UNCHANGED else notifications,
                current.archived if archived is UNCHANGED else archived,
                current.pin_order if pin_order is UNCHANGED else pin_order,
                conversation_id,
                user_id,
            ),
        )
        return await self._member(conversation_id, user_id)

    async def _member(self, conversation_id: str, user_id: str) -> Member:
        rows = await self._all(
            "SELECT * FROM members WHERE conversation_id = ? AND user_id = ?",
            (conversation_id, user_id),
        )
        if not rows:
            raise WhisprError(Reason.NOT_FOUND, f"{user_id} is not a member")
        return _rows.member(rows[0])

    @_serialized
    async def list_user_conversations(
        self,
        user_id: str,
        limit: int,
        before: float | None = None,
        *,
        before_id: str | None = None,
    ) -> list[ConversationSummary]:
        page = rules.page_limit(limit)
        rows = await self._all(
            "SELECT c.*, m.role AS member_role, m.read_seq AS member_read_seq, "
            "COALESCE(c.last_message_at, c.created_at) AS activity FROM members m "
            "JOIN conversations c ON c.id = m.conversation_id WHERE m.user_id = ? "
            "AND (? IS NULL OR COALESCE(c.last_message_at, c.created_at) < ? "
            " OR (COALESCE(c.last_message_at, c.created_at) = ? AND c.id < ?)) "
            "ORDER BY activity DESC, c.id DESC LIMIT ?",
            (user_id, before, before, before, before_id, page),
        )
        summaries = []
        for row in rows:
            conversation = _rows.conversation(row)
            last = await self._last_visible(conversation.id, user_id)
            unread = await self._unread(conversation.id, user_id, row["member_read_seq"])
            mentions = await self._unread_mentions(conversation.id, user_id, row["member_read_seq"])
            summaries.append(
                ConversationSummary(
                    conversation=conversation,
                    role=row["member_role"],
                    last_message=last,
                    unread_count=unread,
                    mention_count=mentions,
                )
            )
        return summaries

    async def _last_visible(self, conversation_id: str, user_id: str) -> Message | None:
        page = await self.page_messages(conversation_id, limit=1, viewer_id=user_id)
        return page[-1] if page else None

    async def _unread(self, conversation_id: str, user_id: str, read_seq: int) -> int:
        rows = await self._all(
            "SELECT count(*) FROM messages WHERE conversation_id = ? AND seq > ? "
            "AND sender_id <> ? AND NOT deleted",
            (conversation_id, read_seq, user_id),
        )
        return int(rows[0][0])

    async def _unread_mentions(self, conversation_id: str, user_id: str, read_seq: int) -> int:
        rows = await self._all(
            "SELECT count(*) FROM messages x WHERE conversation_id = ? AND seq > ? "
            "AND sender_id <> ? AND NOT deleted AND EXISTS (SELECT 1 FROM "
            "json_each(x.metadata, '$.mentions') j WHERE j.value = ?)",
            (conversation_id, read_seq, user_id, user_id),
        )
        return int(rows[0][0])

    # -- messages ------------------------------------------------------------------------

    async def insert_messages(self, batch: Sequence[Message]) -> list[InsertResult]:
        """Group commit; a message the store refuses is ``invalid`` alone (``_isolate``)."""
        return await _isolate.insert_isolated(self._insert_batch, batch)

    @_serialized
    async def _insert_batch(self, batch: Sequence[Message]) -> list[InsertResult]:
        """The batch in one transaction; ``batch`` passed the store's checks."""
        db = self.db
        results: list[InsertResult] = []
        await db.execute("BEGIN IMMEDIATE")
        try:
            # Messages with their seqs first, then those the store sequences
            # (as on PostgreSQL); results in batch order.
            appended: list[tuple[int, Message]] = []
            for m in batch:
                if type(m) is Unsequenced:
                    appended.append((len(results), m))
                    results.append(InsertResult(status="seq_conflict", message=m))
                    continue
                cursor = await db.execute(
                    f"INSERT INTO messages ({_MESSAGE_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (
                        m.conversation_id,
                        m.seq,
                        m.id,
                        m.client_id,
                        m.sender_id,
                        m.kind,
                        m.content,
                        _rows.dumps(m.attachments),
                        m.reply_to,
                        m.created_at,
                        m.edited_at,
                        int(m.deleted),
                        int(m.pinned),
                        _rows.dumps(m.metadata),
                    ),
                )
                if cursor.rowcount == 1:
                    await self._note_expiry(m)
                    await db.execute(
                        "UPDATE conversations SET last_seq = max(last_seq, ?), "
                        "last_message_at = max(COALESCE(last_message_at, 0), ?) WHERE id = ?",
                        (m.seq, m.created_at, m.conversation_id),
                    )
                    results.append(InsertResult(status="inserted", message=m))
                    continue
                original = await self.find_by_client_id(m.conversation_id, m.sender_id, m.client_id)
                if original is not None:
                    results.append(InsertResult(status="duplicate", message=original))
                else:
                    results.append(InsertResult(status="seq_conflict", message=m))
            for index, m in appended:
                results[index] = await self._append(m)
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        return results

    async def _append(self, m: Message) -> InsertResult:
        """One unsequenced message, in the batch's transaction: the next seq, or its original."""
        original = await self.find_by_client_id(m.conversation_id, m.sender_id, m.client_id)
        if original is not None:
            return InsertResult(status="duplicate", message=original)
        # Writes are serialized and this runs in the batch's transaction: a removal that
        # committed before it is seen, and none can commit in between.
        if not (isinstance(m, Unsequenced) and m.trusted_sender) and not await self._all(
            "SELECT 1 FROM members WHERE conversation_id = ? AND user_id = ?",
            (m.conversation_id, m.sender_id),
        ):
            return InsertResult(status="not_member", message=m)
        rows = await self._all(
            "SELECT last_seq, member_version FROM conversations WHERE id = ?",
            (m.conversation_id,),
        )
        if not rows:
            raise WhisprError(Reason.NOT_FOUND, f"no conversation {m.conversation_id}")
        # An end-to-end send checked against members that changed since (the triggers of
        # migration 0012 move the version with every member added or removed).
        expected = m.member_version if isinstance(m, Unsequenced) else None
        if expected is not None and expected != rows[0][1]:
            return InsertResult(status="members_changed", message=m)
        message = _rows.sequenced(m, rows[0][0] + 1)
        await self.db.execute(
            f"INSERT INTO messages ({_MESSAGE_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                message.conversation_id,
                message.seq,
                message.id,
                message.client_id,
                message.sender_id,
                message.kind,
                message.content,
                _rows.dumps(message.attachments),
                message.reply_to,
                message.created_at,
                message.edited_at,
                int(message.deleted),
                int(message.pinned),
                _rows.dumps(message.metadata),
            ),
        )
        await self._note_expiry(message)
        await self.db.execute(
            "UPDATE conversations SET last_seq = ?, "
            "last_message_at = max(COALESCE(last_message_at, 0), ?) WHERE id = ?",
            (message.seq, message.created_at, message.conversation_id),
        )
        return InsertResult(status="inserted", message=message)

    @_serialized
    async def find_by_client_id(
        self, conversation_id: str, sender_id: str, client_id: str
    ) -> Message | None:
        rows = await self._all(
            "SELECT seq FROM messages WHERE conversation_id = ? AND sender_id = ? "
            "AND client_id = ?",
            (conversation_id, sender_id, client_id),
        )
        # An expired message's stub too: a retried send is its duplicate, never a new one.
        return await self._get_message(conversation_id, rows[0][0], "") if rows else None

    @_serialized
    async def get_message(self, conversation_id: str, seq: int) -> Message | None:
        return await self._get_message(conversation_id, seq, " AND NOT expired")

    async def _get_message(self, conversation_id: str, seq: int, where: str) -> Message | None:
        rows = await self._all(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND seq = ?"
            + where,
            (conversation_id, seq),
        )
        if not rows:
            return None
        reactions = await self._reactions(conversation_id, [seq])
        return _rows.message(rows[0], reactions.get(seq))

    async def _require_message(self, conversation_id: str, seq: int) -> Message:
        found = await self.get_message(conversation_id, seq)
        if found is None:
            raise WhisprError(Reason.NOT_FOUND, f"no message {seq} in {conversation_id}")
        return found

    async def _reactions(
        self, conversation_id: str, seqs: Sequence[int]
    ) -> dict[int, dict[str, tuple[str, ...]]]:
        if not seqs:
            return {}
        marks = ",".join("?" * len(seqs))
        rows = await self._all(
            f"SELECT seq, emoji, user_id FROM reactions WHERE conversation_id = ? "
            f"AND seq IN ({marks}) ORDER BY seq, emoji, created_at, user_id",
            (conversation_id, *seqs),
        )
        return _rows.reactions_by_seq(rows)

    @_serialized
    async def last_seq(self, conversation_id: str) -> int:
        rows = await self._all(
            "SELECT COALESCE(max(seq), 0) FROM messages WHERE conversation_id = ?",
            (conversation_id,),
        )
        return int(rows[0][0])

    @_serialized
    async def memberships(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        wanted = list(dict.fromkeys(pairs))
        found: set[tuple[str, str]] = set()
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start : start + _IN_CHUNK]
            rows_of = ",".join(["(?, ?)"] * len(chunk))
            rows = await self._all(
                "SELECT conversation_id, user_id FROM members "
                f"WHERE (conversation_id, user_id) IN (VALUES {rows_of})",
                [value for pair in chunk for value in pair],
            )
            found.update((row[0], row[1]) for row in rows)
        return found

    @_serialized
    async def last_seqs(self, conversation_ids: Sequence[str]) -> dict[str, int]:
        ids = list(dict.fromkeys(conversation_ids))
        found: dict[str, int] = {}
        for start in range(0, len(ids), _IN_CHUNK):  # SQLite bounds a statement's variables
            chunk = ids[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = await self._all(
                f"SELECT id, last_seq FROM conversations WHERE id IN ({marks})", chunk
            )
            found.update({row[0]: int(row[1]) for row in rows})
        return found

    @_serialized
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
        limit = rules.page_limit(limit)
        if filters is not None:
            check_filters(filters)
        hidden = (
            "AND seq NOT IN (SELECT seq FROM hidden_messages WHERE conversation_id = ? "
            "AND user_id = ?)"
        )
        params: list[Any] = [conversation_id]
        where = "conversation_id = ? AND NOT expired"
        if before_seq is not None:
            where += " AND seq < ?"
            params.append(before_seq)
        if after_seq is not None:
            where += " AND seq > ?"
            params.append(after_seq)
        if viewer_id is not None:
            where += " " + hidden
            params += [conversation_id, viewer_id]
        if filters is not None and not filters.empty:
            where += " AND " + _FILTERED
            params += _filter_params(filters)
        order = "ASC" if after_seq is not None else "DESC"
        rows = await self._all(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE {where} ORDER BY seq {order} LIMIT ?",
            (*params, limit),
        )
        rows = sorted(rows, key=lambda r: r["seq"])
        reactions = await self._reactions(conversation_id, [r["seq"] for r in rows])
        return [_rows.message(r, reactions.get(r["seq"])) for r in rows]

    @_serialized
    async def search_messages(self, query: SearchQuery) -> list[SearchHit]:
        check_query(query)
        match = _match(query.text)
        if not match:
            return []
        after = query.after
        cursor = (after.rank, after.conversation_id, after.seq) if after else (None, None, None)
        has = query.has_attachment
        rows = await self._all(
            _SEARCH,
            (
                match,
                query.viewer_id,
                query.conversation_id,
                query.conversation_id,
                *_filter_params(query.filters),
                has,
                None if has is None else int(has),
                query.viewer_id,
                cursor[0],
                cursor[0],
                cursor[0],
                cursor[1],
                cursor[1],
                cursor[2],
                rules.page_limit(query.limit),
            ),
        )
        hits = []
        for row in rows:
            reactions = await self._reactions(row["conversation_id"], [row["seq"]])
            message = _rows.message(row, reactions.get(row["seq"]))
            hits.append(_rows.search_hit(message, row["rank"], row["snippet"]))
        return hits

    @_serialized
    async def edit_message(
        self, conversation_id: str, seq: int, content: str, edited_at: float
    ) -> Message:
        _check.edit(content, edited_at)
        await self._require_live_message(conversation_id, seq)
        await self.db.execute(
            "UPDATE messages SET content = ?, edited_at = ? WHERE conversation_id = ? AND seq = ?",
            (content, edited_at, conversation_id, seq),
        )
        return await self._require_message(conversation_id, seq)

    async def _require_live_message(self, conversation_id: str, seq: int) -> Message:
        """The message, which must not be a tombstone (no edits, reactions or pins on one)."""
        found = await self._require_message(conversation_id, seq)
        if found.deleted:
            raise WhisprError(Reason.INVALID, f"message {seq} was deleted", field="seq")
        return found

    @_serialized
    async def delete_message(self, conversation_id: str, seq: int) -> Message:
        await self._require_message(conversation_id, seq)
        db = self.db
        await db.execute("BEGIN IMMEDIATE")
        try:
            await db.execute(
                "UPDATE messages SET deleted = 1, content = '', attachments = '[]', pinned = 0 "
                "WHERE conversation_id = ? AND seq = ?",
                (conversation_id, seq),
            )
            await db.execute(
                "DELETE FROM reactions WHERE conversation_id = ? AND seq = ?",
                (conversation_id, seq),
            )
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        return await self._require_message(conversation_id, seq)

    @_serialized
    async def hide_message(self, conversation_id: str, seq: int, user_id: str) -> None:
        _check.name(user_id, "user_id")
        await self._require_message(conversation_id, seq)
        await self.db.execute(
            "INSERT INTO hidden_messages VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (conversation_id, seq, user_id),
        )

    @_serialized
    async def add_reaction(
        self, conversation_id: str, seq: int, user_id: str, emoji: str
    ) -> Message:
        _check.name(user_id, "user_id")
        _check.name(emoji, "emoji")
        await self._require_live_message(conversation_id, seq)
        # unixepoch('subsec') would match PostgreSQL but needs SQLite 3.42; the
        # value only orders a message's reactions, so julianday's scale is fine.
        await self.db.execute(
            "INSERT INTO reactions VALUES (?, ?, ?, ?, julianday('now')) ON CONFLICT DO NOTHING",
            (conversation_id, seq, emoji, user_id),
        )
        return await self._require_message(conversation_id, seq)

    @_serialized
    async def remove_reaction(
        self, conversation_id: str, seq: int, user_id: str, emoji: str
    ) -> Message:
        await self._require_message(conversation_id, seq)
        await self.db.execute(
            "DELETE FROM reactions WHERE conversation_id = ? AND seq = ? AND emoji = ? "
            "AND user_id = ?",
            (conversation_id, seq, emoji, user_id),
        )
        return await self._require_message(conversation_id, seq)

    @_serialized
    async def set_pinned(self, conversation_id: str, seq: int, pinned: bool) -> Message:
        if pinned:
            await self._require_live_message(conversation_id, seq)
        else:
            await self._require_message(conversation_id, seq)
        await self.db.execute(
            "UPDATE messages SET pinned = ? WHERE conversation_id = ? AND seq = ?",
            (int(pinned), conversation_id, seq),
        )
        return await self._require_message(conversation_id, seq)

    @_serialized
    async def list_pinned(self, conversation_id: str) -> list[Message]:
        rows = await self._all(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND pinned "
            "ORDER BY seq",
            (conversation_id,),
        )
        reactions = await self._reactions(conversation_id, [r["seq"] for r in rows])
        return [_rows.message(r, reactions.get(r["seq"])) for r in rows]

    @_serialized
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
        rows = await self._all(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND reply_to = ? "
            "AND seq > ? AND NOT expired "
            "AND (? IS NULL OR seq NOT IN (SELECT seq FROM hidden_messages "
            "WHERE conversation_id = ? AND user_id = ?)) ORDER BY seq LIMIT ?",
            (
                conversation_id,
                root_seq,
                after_seq,
                viewer_id,
                conversation_id,
                viewer_id,
                rules.page_limit(limit),
            ),
        )
        reactions = await self._reactions(conversation_id, [r["seq"] for r in rows])
        return [_rows.message(r, reactions.get(r["seq"])) for r in rows]

    # -- cursors -------------------------------------------------------------------------

    @_serialized
    async def mark_read(self, conversation_id: str, user_id: str, seq: int) -> int:
        _check.cursor(seq)
        await self._member(conversation_id, user_id)
        await self.db.execute(
            "UPDATE members SET read_seq = max(read_seq, ?) WHERE conversation_id = ? "
            "AND user_id = ?",
            (seq, conversation_id, user_id),
        )
        return (await self._member(conversation_id, user_id)).read_seq

    @_serialized
    async def mark_delivered(
        self, conversation_id: str, user_id: str, device_id: str, seq: int
    ) -> int:
        _check.cursor(seq)
        _check.name(device_id, "device_id")
        await self._member(conversation_id, user_id)
        await self.db.execute(
            "INSERT INTO delivered_cursors VALUES (?, ?, ?, ?) "
            "ON CONFLICT (conversation_id, user_id, device_id) "
            "DO UPDATE SET seq = max(seq, excluded.seq)",
            (conversation_id, user_id, device_id, seq),
        )
        rows = await self._all(
            "SELECT seq FROM delivered_cursors WHERE conversation_id = ? AND user_id = ? "
            "AND device_id = ?",
            (conversation_id, user_id, device_id),
        )
        return int(rows[0][0])

    @_serialized
    async def get_read_cursors(self, conversation_id: str) -> dict[str, int]:
        rows = await self._all(
            "SELECT user_id, read_seq FROM members WHERE conversation_id = ?", (conversation_id,)
        )
        return {r[0]: int(r[1]) for r in rows}

    @_serialized
    async def get_delivery_cursors(
        self, conversation_id: str, user_id: str | None = None
    ) -> list[DeliveryCursor]:
        rows = await self._all(
            "SELECT conversation_id, user_id, device_id, seq FROM delivered_cursors "
            "WHERE conversation_id = ? AND (? IS NULL OR user_id = ?) ORDER BY user_id, device_id",
            (conversation_id, user_id, user_id),
        )
        return [_rows.delivery_cursor(r) for r in rows]

    @_serialized
    async def unread_counts(self, user_id: str) -> dict[str, int]:
        rows = await self._all(
            "SELECT m.conversation_id, (SELECT count(*) FROM messages x WHERE "
            "x.conversation_id = m.conversation_id AND x.seq > m.read_seq AND "
            "x.sender_id <> m.user_id AND NOT x.deleted) FROM members m WHERE m.user_id = ?",
            (user_id,),
        )
        return {r[0]: int(r[1]) for r in rows}

    @_serialized
    async def mention_counts(self, user_id: str) -> dict[str, int]:
        rows = await self._all(
            "SELECT m.conversation_id, (SELECT count(*) FROM messages x WHERE "
            "x.conversation_id = m.conversation_id AND x.seq > m.read_seq AND "
            "x.sender_id <> m.user_id AND NOT x.deleted AND EXISTS (SELECT 1 FROM "
            "json_each(x.metadata, '$.mentions') j WHERE j.value = m.user_id)) "
            "FROM members m WHERE m.user_id = ?",
            (user_id,),
        )
        return {r[0]: int(r[1]) for r in rows if r[1]}

    # -- the audit log (whispr/audit/; not part of the actors' Store port) ----------------

    @_serialized
    async def append_audit(self, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        db = self.db
        await db.execute("BEGIN IMMEDIATE")  # one transaction, one fsync, for the batch
        try:
            await db.executemany(_AUDIT_INSERT, [_audit.params(r) for r in records])
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise

    @_serialized
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
            f"SELECT {', '.join(_audit.COLUMNS)} FROM audit_log",
            lambda _n: "?",
            since=since,
            until=until,
            user_id=user_id,
            kinds=kinds,
            after=after,
            limit=limit,
        )
        return [_audit.record(r) for r in await self._all(sql, values)]

    async def purge_audit(self, before: float) -> int:
        # Batch by batch, each under the lock alone: sends wait for one batch at most.
        total = 0
        while True:
            deleted = await self._purge_audit_batch(before)
            total += deleted
            if deleted < _audit.PURGE_BATCH:
                return total

    @_serialized
    async def _purge_audit_batch(self, before: float) -> int:
        cursor = await self.db.execute(_AUDIT_PURGE, (before, _audit.PURGE_BATCH))
        return int(cursor.rowcount)

    # -- token revocations and presence settings (whispr/revocations.py,
    # whispr/user_presence.py; not part of the actors' Store port) -------------------------

    @_serialized
    async def add_revocation(self, revocation: Revocation) -> None:
        await self.db.execute(_qmarks(_accounts.INSERT_REVOCATION), _accounts.params(revocation))

    @_serialized
    async def revocations_since(self, at: float, now: float) -> list[Revocation]:
        rows = await self._all(_qmarks(_accounts.REVOCATIONS_SINCE), (at, now))
        return [_accounts.revocation(r) for r in rows]

    @_serialized
    async def contacts(self, user_id: str, limit: int) -> list[str]:
        rows = await self._all(_qmarks(_accounts.CONTACTS), (user_id, user_id, limit))
        return [r[0] for r in rows]

    @_serialized
    async def hidden_last_seen(self, user_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(user_ids), 500):  # SQLite's limit of bound values
            chunk = list(user_ids[start : start + 500])
            rows = await self._all(
                "SELECT user_id FROM presence_privacy WHERE hide_last_seen AND user_id IN "
                f"({', '.join('?' for _ in chunk)})",
                chunk,
            )
            found.update(r[0] for r in rows)
        return found

    @_serialized
    async def set_hide_last_seen(self, user_id: str, hide: bool) -> None:
        await self.db.execute(
            "INSERT INTO presence_privacy (user_id, hide_last_seen) VALUES (?, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET hide_last_seen = excluded.hide_last_seen",
            (user_id, int(hide)),
        )

    # -- scheduled messages and expiries (actors/scheduling.py) ------------------------------

    async def _note_expiry(self, message: Message) -> None:
        """A disappearing message's expiry row, in the batch's transaction (PostgreSQL's
        trigger does the same there)."""
        at = _schedules.expires_at_of(message)
        if at is not None:
            await self.db.execute(
                "INSERT INTO message_expiries VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (message.conversation_id, message.seq, at, at),
            )

    @_serialized
    async def expire_message(self, conversation_id: str, seq: int) -> bool:
        _check.name(conversation_id, "conversation_id")
        _check.cursor(seq)
        db = self.db
        key = (conversation_id, seq)
        await db.execute("BEGIN IMMEDIATE")
        try:
            cursor = await db.execute(
                "UPDATE messages SET expired = 1, deleted = 1, content = '', attachments = '[]', "
                "metadata = '{}', pinned = 0, edited_at = NULL "
                "WHERE conversation_id = ? AND seq = ? AND NOT expired",
                key,
            )
            for table in ("reactions", "hidden_messages"):
                await db.execute(f"DELETE FROM {table} WHERE conversation_id = ? AND seq = ?", key)
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        return cursor.rowcount == 1

    @_serialized
    async def add_schedule(self, schedule: Schedule) -> Schedule:
        _schedules.check_schedule(schedule)
        await self.db.execute(
            "INSERT INTO scheduled_messages (id, conversation_id, sender_id, client_id, draft, "
            "send_at, created_at, due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (conversation_id, sender_id, client_id) DO NOTHING",
            (
                schedule.id,
                schedule.conversation_id,
                schedule.sender_id,
                schedule.draft.client_id,
                _schedules.draft_json(schedule.draft),
                schedule.send_at,
                schedule.created_at,
                schedule.send_at,
            ),
        )
        rows = await self._all(
            f"SELECT {_schedules.SCHEDULE_COLUMNS} FROM scheduled_messages "
            "WHERE conversation_id = ? AND sender_id = ? AND client_id = ?",
            (schedule.conversation_id, schedule.sender_id, schedule.draft.client_id),
        )
        if not rows:  # taken and sent between the two statements
            raise WhisprError(Reason.CONFLICT, "this schedule was already sent")
        return _schedules.schedule(rows[0])

    @_serialized
    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        _check.name(schedule_id, "schedule_id")
        rows = await self._all(
            f"SELECT {_schedules.SCHEDULE_COLUMNS} FROM scheduled_messages WHERE id = ?",
            (schedule_id,),
        )
        return _schedules.schedule(rows[0]) if rows else None

    @_serialized
    async def list_schedules(self, conversation_id: str, sender_id: str) -> list[Schedule]:
        rows = await self._all(
            f"SELECT {_schedules.SCHEDULE_COLUMNS} FROM scheduled_messages "
            "WHERE conversation_id = ? AND sender_id = ? ORDER BY send_at, id",
            (conversation_id, sender_id),
        )
        return [_schedules.schedule(row) for row in rows]

    @_serialized
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
        if current.attempts:
            raise _schedules.conflict(schedule_id)
        await self.db.execute(
            "UPDATE scheduled_messages SET draft = COALESCE(?, draft), "
            "send_at = COALESCE(?, send_at), due_at = COALESCE(?, due_at) "
            "WHERE id = ? AND attempts = 0",
            (
                None if draft is None else _schedules.draft_json(draft),
                send_at,
                send_at,
                schedule_id,
            ),
        )
        updated = await self.get_schedule(schedule_id)
        assert updated is not None  # writes are serialized: nothing took it meanwhile
        return updated

    @_serialized
    async def cancel_schedule(self, schedule_id: str) -> None:
        current = await self.get_schedule(schedule_id)
        if current is None:
            raise WhisprError(Reason.NOT_FOUND, f"no schedule {schedule_id}", field="schedule_id")
        if current.attempts:
            raise _schedules.conflict(schedule_id)
        await self.db.execute("DELETE FROM scheduled_messages WHERE id = ?", (schedule_id,))

    @_serialized
    async def claim_schedules(self, now: float, lease_s: float, limit: int) -> list[Schedule]:
        rows = await self._all(
            "UPDATE scheduled_messages SET due_at = ? + ?, attempts = attempts + 1 "
            "WHERE id IN (SELECT id FROM scheduled_messages WHERE due_at <= ? "
            f"ORDER BY due_at, id LIMIT ?) RETURNING {_schedules.SCHEDULE_COLUMNS}",
            (now, lease_s, now, limit),
        )
        claimed = [_schedules.schedule(row) for row in rows]
        return sorted(claimed, key=lambda s: (s.send_at, s.id))

    @_serialized
    async def finish_schedule(self, schedule_id: str) -> None:
        await self.db.execute("DELETE FROM scheduled_messages WHERE id = ?", (schedule_id,))

    @_serialized
    async def claim_expiries(self, now: float, lease_s: float, limit: int) -> list[Expiry]:
        rows = await self._all(
            "UPDATE message_expiries SET due_at = ? + ? WHERE (conversation_id, seq) IN "
            "(SELECT conversation_id, seq FROM message_expiries WHERE due_at <= ? "
            "ORDER BY due_at, conversation_id, seq LIMIT ?) "
            "RETURNING conversation_id, seq, expires_at",
            (now, lease_s, now, limit),
        )
        return sorted((_schedules.expiry(row) for row in rows), key=lambda e: e.expires_at)

    @_serialized
    async def finish_expiry(self, conversation_id: str, seq: int) -> None:
        await self.db.execute(
            "DELETE FROM message_expiries WHERE conversation_id = ? AND seq = ?",
            (conversation_id, seq),
        )

    @_serialized
    async def next_due(self) -> float | None:
        rows = await self._all(
            "SELECT (SELECT due_at FROM scheduled_messages ORDER BY due_at LIMIT 1), "
            "(SELECT due_at FROM message_expiries ORDER BY due_at LIMIT 1)"
        )
        due = [value for value in rows[0] if value is not None]
        return float(min(due)) if due else None


_AUDIT_INSERT = (
    f"INSERT OR IGNORE INTO audit_log ({', '.join(_audit.COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _audit.COLUMNS)})"
)
#: One batch of the retention job: the oldest rows past the limit, by the (at) index.
_AUDIT_PURGE = (
    "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < ? ORDER BY at LIMIT ?)"
)


def _qmarks(sql: str) -> str:
    """A statement of :mod:`whispr.store._accounts` with SQLite's placeholders."""
    return re.sub(r"\$\d+", "?", sql)


def _make_folder(path: str) -> None:
    Path(path).absolute().parent.mkdir(parents=True, exist_ok=True)


async def _run_script(db: aiosqlite.Connection, sql: str) -> None:
    """Run a migration's statements one by one inside the open transaction.

    A statement ends at the ``;`` that completes it (SQLite's own test): a trigger's body
    holds statements of its own.
    """
    statement = ""
    for piece in sql.split(";"):
        statement += piece + ";"
        if sqlite3.complete_statement(statement):
            if statement.strip(" \n;"):
                await db.execute(statement)
            statement = ""
