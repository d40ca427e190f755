"""Full-text search and filtered history: the query, its rules, its hits and its cursor.

One definition of each, shared by the stores (which run the query), ``Messaging`` (which
checks it and pages it) and every surface (WebSocket, gRPC, export), so that they refuse
the same inputs with the same ``invalid`` naming the same field.

Who finds what is the history's rule: a user finds the messages of the conversations they
are a member of now (the store keeps current memberships only, and a member reads the
whole history), except tombstones, the messages they deleted for themselves and messages
encrypted end to end (``metadata.e2e`` true: ciphertext has no words).

The cursor is opaque to clients: the last hit's position (rank, conversation, seq) with a
keyed hash of the query it belongs to. A cursor that is garbled, made up, or from another
query (another user, other words or filters) is refused with ``invalid``, never
reinterpreted: a client cannot steer a page with a position it did not get.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from typing import Final

import msgspec

from actors import rules
from actors.errors import Reason, WhisprError
from actors.model import Message, MessageKind

__all__ = [
    "DEFAULT_LANGUAGE",
    "HIGHLIGHT_END",
    "HIGHLIGHT_START",
    "LANGUAGE_SETTING",
    "MAX_QUERY",
    "SEARCH_LANGUAGES",
    "CursorCodec",
    "MessageFilters",
    "SearchHit",
    "SearchPage",
    "SearchPosition",
    "SearchQuery",
    "as_times",
    "check_filters",
    "check_query",
    "check_query_text",
    "highlighted",
    "language_of",
]

LANGUAGE_SETTING: Final = "search_language"
"""The conversation setting naming the language its messages are indexed and searched in."""
SEARCH_LANGUAGES: Final = frozenset(
    {"simple", "english", "french", "german", "spanish", "italian", "portuguese", "dutch"}
)
"""The languages a conversation may be searched in: PostgreSQL's ``simple`` (words as
written, lower-cased) and Snowball stemmers. SQLite indexes every language as ``simple``."""
DEFAULT_LANGUAGE: Final = "simple"
MAX_QUERY: Final = 256
"""The longest search text, in characters."""
HIGHLIGHT_START: Final = "\ue000"
HIGHLIGHT_END: Final = "\ue001"
"""The marks the stores put around matched words in a snippet (private-use characters),
turned into :attr:`SearchHit.highlights` ranges before a hit leaves the store."""
_KINDS: Final = frozenset({"text", "media", "system"})


def language_of(settings: dict[str, object]) -> str:
    """The search language of a conversation's settings."""
    value = settings.get(LANGUAGE_SETTING)
    return value if isinstance(value, str) and value in SEARCH_LANGUAGES else DEFAULT_LANGUAGE


class MessageFilters(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What narrows history pages and searches: the sender, the kind, a time range
    (``since`` included, ``until`` excluded, seconds since the epoch)."""

    sender_id: str | None = None
    kind: MessageKind | None = None
    since: float | None = None
    until: float | None = None

    @property
    def empty(self) -> bool:
        return self == _NO_FILTERS


_NO_FILTERS: Final = MessageFilters()


class SearchPosition(msgspec.Struct, frozen=True, array_like=True):
    """Where a page of hits ended: hits are ordered by rank (best first), then conversation
    id, then seq (newest first)."""

    rank: float
    conversation_id: str
    seq: int


class SearchQuery(msgspec.Struct, frozen=True, kw_only=True):
    """A search by ``viewer_id``, as the stores take it (checked by :func:`check_query`)."""

    viewer_id: str
    text: str
    conversation_id: str | None = None
    filters: MessageFilters = _NO_FILTERS
    has_attachment: bool | None = None
    limit: int = 20
    after: SearchPosition | None = None


class SearchHit(msgspec.Struct, frozen=True, kw_only=True):
    """One message found: its rank (higher is better; comparable within one store only),
    and a snippet of its content with the matched words' ``[start, end)`` ranges, in code
    points (Python's string indices)."""

    message: Message
    rank: float
    snippet: str
    highlights: tuple[tuple[int, int], ...] = ()


class SearchPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of hits; ``cursor`` asks for the next one (None: this was the last)."""

    hits: list[SearchHit]
    cursor: str | None = None


def check_query_text(text: object) -> str:
    """Search text: 1 to :data:`MAX_QUERY` characters of valid text, not blank."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_QUERY:
        raise WhisprError(
            Reason.INVALID, f"query must be 1 to {MAX_QUERY} characters", field="query"
        )
    rules.check_text(text, "query")
    return text


def check_filters(filters: MessageFilters) -> MessageFilters:
    """Filters every store holds alike: a valid sender id, a known kind, finite times."""
    if filters.sender_id is not None:
        rules.check_user_ids([filters.sender_id], "sender_id")
    if filters.kind is not None and filters.kind not in _KINDS:
        raise WhisprError(Reason.INVALID, f"kind must be one of {sorted(_KINDS)}", field="kind")
    for value, field in ((filters.since, "since"), (filters.until, "until")):
        if value is not None and not _finite(value):
            raise WhisprError(Reason.INVALID, f"{field} must be a finite time", field=field)
    return filters


def _finite(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int beyond any float
        return False


def as_times(filters: MessageFilters) -> tuple[float | None, float | None]:
    """``since`` and ``until`` as floats, as the stores bind them (an int is welcome)."""
    since, until = filters.since, filters.until
    return (None if since is None else float(since), None if until is None else float(until))


def check_query(query: SearchQuery) -> SearchQuery:
    """The whole query, as the stores check it at their boundary."""
    check_query_text(query.text)
    rules.check_user_ids([query.viewer_id], "viewer_id")
    if query.conversation_id is not None:
        rules.check_user_ids([query.conversation_id], "conversation_id")
    check_filters(query.filters)
    rules.page_limit(query.limit)
    if query.after is not None:
        after = query.after
        rules.check_position(after.seq, "cursor")
        rules.check_text(after.conversation_id, "cursor")
        if not _finite(after.rank):
            raise WhisprError(Reason.INVALID, "cursor holds no rank", field="cursor")
    return query


def highlighted(marked: str) -> tuple[str, tuple[tuple[int, int], ...]]:
    """A snippet with :data:`HIGHLIGHT_START`/:data:`HIGHLIGHT_END` marks as plain text and
    the ranges they marked: clients render highlights without parsing markup out of text a
    user wrote."""
    parts: list[str] = []
    ranges: list[tuple[int, int]] = []
    length = 0
    start: int | None = None
    for char in marked:
        if char == HIGHLIGHT_START:
            start = length
        elif char == HIGHLIGHT_END:
            if start is not None and length > start:
                ranges.append((start, length))
            start = None
        else:
            parts.append(char)
            length += 1
    return "".join(parts), tuple(ranges)


class _Cursor(msgspec.Struct, frozen=True, array_like=True):
    position: SearchPosition
    mac: bytes


_cursor_encoder = msgspec.msgpack.Encoder()
_cursor_decoder = msgspec.msgpack.Decoder(_Cursor)
_query_encoder = msgspec.json.Encoder(order="deterministic")
_MAC_BYTES: Final = 16


class CursorCodec:
    """Opaque, tamper-evident search cursors (see the module's docstring).

    The key is the node's secret (the same on every node, so a page may be asked of any
    node); a cursor says nothing a client could use beyond asking for the next page.
    """

    def __init__(self, key: bytes) -> None:
        self._key = hashlib.blake2b(key, digest_size=32).digest()

    def _mac(self, query: SearchQuery, position: SearchPosition) -> bytes:
        scope = msgspec.structs.replace(query, after=None, limit=0)
        return hashlib.blake2b(
            _query_encoder.encode(scope) + _cursor_encoder.encode(position),
            key=self._key,
            digest_size=_MAC_BYTES,
        ).digest()

    def encode(self, query: SearchQuery, position: SearchPosition) -> str:
        raw = _cursor_encoder.encode(_Cursor(position, self._mac(query, position)))
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode(self, query: SearchQuery, cursor: object) -> SearchPosition:
        """The position a cursor of this query holds; ``invalid`` (field ``cursor``) for any
        other string."""
        if not isinstance(cursor, str) or not 0 < len(cursor) <= 2 * rules.MAX_ID + 64:
            raise _bad_cursor()
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            decoded = _cursor_decoder.decode(raw)
        except (ValueError, msgspec.DecodeError) as exc:
            raise _bad_cursor() from exc
        if not hmac.compare_digest(decoded.mac, self._mac(query, decoded.position)):
            raise _bad_cursor()
        return decoded.position


def _bad_cursor() -> WhisprError:
    return WhisprError(
        Reason.INVALID,
        "cursor is not one this search gave; start again without it",
        field="cursor",
    )
