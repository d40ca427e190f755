"""Every client event's payload, at every extreme, over a real socket on both stores.

For each event of each channel kind (enumerated from the kinds' event tables, so a new event
is covered as soon as it is registered) and for the conversation join, hypothesis draws
payloads from the event's own msgspec struct: numbers at and beyond every boundary (negative,
2^31, 2^53, 2^63 - 1, 2^63, 2^64, 2^70), floats and bools where integers are meant, text with
NUL characters, lone surrogates (sent as JSON ``\\ud800`` escapes, as ``JSON.stringify`` writes
them), non-characters, empty and enormous strings, nested metadata made of the same. Each
payload goes, as a raw frame, to a node on the embedded store and to a node on PostgreSQL and
Redis, and:

- the reply is ``ok`` or an error reply: never ``phx_error``, never a closed socket;
- an ``invalid`` reply names a field of the payload;
- a payload holding a value the event cannot take is refused (``invalid`` or ``too_large``);
- no reply carries a database's words;
- both stores give the same answer (status, reason, field);
- afterwards the channel still serves a valid send.

The calls need the nodes' event loop, so hypothesis draws the payloads first and the test
sends them (as ``tests/actors/test_numeric_bounds.py`` does); a failure lists every payload
that was answered wrongly, with the event's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.rules import MAX_SEQ
from supervisors import stop_tree
from tests import services
from tests.gateway.conftest import RunningNode, start_node, unique
from whispr.client import PhoenixClient
from whispr.gateway.channels import CHANNELS
from whispr.gateway.channels.conversation import ConversationJoin

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: Payloads drawn per event; each goes to both nodes.
EXAMPLES = 60
#: A frame a node accepts is at most 64 KiB (``max_frame_bytes``); larger payloads are not
#: drawn (their refusal is the frame limit's, tested in test_edges.py).
MAX_FRAME = 60_000
#: Integer fields whose large values are capped rather than refused (``rules.page_limit``).
CAPPED = frozenset({"limit"})
#: Words of a database error that must never reach a client.
DATABASE_WORDS = re.compile(
    r"postgres|psycopg|asyncpg|sqlite|database|SQL|int64|out of range|unicode escape|"
    r"Traceback|Exception",
    re.IGNORECASE,
)

# -- the values ---------------------------------------------------------------------------

INT_EDGES = [0, 1, -1, 2**31, 2**53, 2**53 + 1, MAX_SEQ, 2**63, 2**64, 2**70, -(2**63) - 1]
INTS = st.one_of(st.sampled_from(INT_EDGES), st.integers(-(2**70), 2**70))
FLOATS = st.one_of(
    st.sampled_from([0.0, 1.0, -1.0, 1.5, 2.0**63, 2.0**70, 1e308, -1e308, 5e-324]),
    st.floats(allow_nan=False, allow_infinity=False),
)
#: Characters PostgreSQL refuses (NUL; lone surrogates, which UTF-8 cannot hold) and others
#: that are legal but unusual (non-characters, the last code point, controls, separators).
ODD_CHARACTERS = ["\x00", "\ud800", "\udbff", "\udc00", "\udfff", "\ufffe", "\uffff"]
ODD_CHARACTERS += ["\U0010ffff", "\x7f", "\x1b", "\u2028", "\u200d", "\U0001f44d"]
ENORMOUS = st.builds(
    lambda char, n: char * n,
    st.sampled_from(["x", "€", "\U0001f600", "\x00"]),
    st.sampled_from([257, 10_001]),
)
TEXT = st.one_of(
    st.sampled_from(["", " ", "a\x00b", "\ud800", "x\udfffy", "\ufffe\uffff", "👍"]),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=24),
    st.text(st.one_of(st.characters(), st.sampled_from(ODD_CHARACTERS)), max_size=24),
    ENORMOUS,
)
JSON_LEAVES = st.one_of(st.none(), st.booleans(), INTS, FLOATS, TEXT)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


def values_for(kind: mi.Type) -> st.SearchStrategy[Any]:
    """Values for a field of type ``kind``: its own extremes, and some of other types."""
    other: st.SearchStrategy[Any] = st.one_of(
        st.none(), st.booleans(), FLOATS, st.just("1"), st.just([])
    )
    if isinstance(kind, mi.IntType):
        return st.one_of(INTS, FLOATS, st.booleans(), st.integers(0, 9), st.integers(0, MAX_SEQ))
    if isinstance(kind, mi.FloatType):
        return st.one_of(FLOATS, INTS, st.booleans())
    if isinstance(kind, mi.StrType):
        return st.one_of(TEXT, TEXT, TEXT, INTS)
    if isinstance(kind, mi.BoolType):
        return st.one_of(st.booleans(), st.booleans(), st.sampled_from([0, 1, 2, "true"]))
    if isinstance(kind, mi.LiteralType):
        return st.one_of(st.sampled_from(list(kind.values)), TEXT, INTS)
    if isinstance(kind, mi.UnionType):
        return st.one_of(*(values_for(t) for t in kind.types))
    if isinstance(kind, mi.NoneType):
        return st.none()
    if isinstance(kind, mi.VarTupleType | mi.ListType):
        return st.one_of(st.lists(values_for(kind.item_type), max_size=4), other)
    if isinstance(kind, mi.DictType):
        return st.one_of(st.dictionaries(TEXT, JSON_VALUES, max_size=4), other)
    if isinstance(kind, mi.StructType):
        return st.one_of(payloads(kind.cls, NESTED.get(kind.cls.__name__, {})), other)
    return JSON_VALUES


#: A valid payload per event, which the drawn values replace field by field (an event that is
#: not listed gets its required fields' plain values, so it is still covered).
BASELINES: dict[str, dict[str, Any]] = {
    "send_message": {"client_id": "c-1", "content": "hi"},
    "edit_message": {"seq": 1, "content": "changed"},
    "delete_message": {"seq": 1, "for_everyone": False},
    "react": {"seq": 1, "emoji": "👍"},
    "pin": {"seq": 1},
    "mark_read": {"seq": 1},
    "mark_delivered": {"seq": 1},
    "history": {"after_seq": 0},
    "create_conversation": {"kind": "group", "title": "t", "members": ["bob"]},
    "list_conversations": {},
    "phx_join": {"last_seq": 0},
    "schedule_message": {"client_id": "c-1", "content": "hi", "send_at": 1.0},
    "update_scheduled": {"schedule_id": "s-1", "content": "changed"},
    "cancel_scheduled": {"schedule_id": "s-1"},
    "set_disappearing": {"seconds": 0},
}
#: A valid value of each struct nested in a payload, by the struct's name.
NESTED = {"Attachment": {"id": "a1", "mime_type": "image/png", "size": 10, "name": "a.png"}}
PLAIN: dict[type[mi.Type], Any] = {mi.IntType: 1, mi.StrType: "x", mi.BoolType: True}


def payloads(struct: type[msgspec.Struct], baseline: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Payloads for ``struct``: its fields as in ``baseline`` (or, if optional, left out), each
    one drawn some of the time; an example holds from no drawn value to all of them."""
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for info in mi.type_info(struct).fields:  # type: ignore[attr-defined]
        name, drawn = info.encode_name, values_for(info.type)
        if name in baseline:
            required[name] = st.one_of(st.just(baseline[name]), drawn)
        elif info.required:
            required[name] = st.one_of(st.just(PLAIN.get(type(info.type))), drawn)
        else:
            optional[name] = drawn
    return st.fixed_dictionaries(required, optional=optional)


# -- what the answer must be ----------------------------------------------------------------


def _bad_text(value: str) -> bool:
    return "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value)


def _bad_json(value: object) -> bool:
    if isinstance(value, str):
        return _bad_text(value)
    if isinstance(value, dict):
        return any(_bad_text(k) or _bad_json(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_bad_json(v) for v in value)
    return False


def unacceptable(kind: mi.Type, value: object, name: str) -> bool:
    """Whether ``value`` cannot be taken by a field of type ``kind`` named ``name``.

    Only what the protocol promises to refuse whatever else the payload holds: wrong types,
    numbers out of the 64-bit range (or negative), text that is not valid text.
    """
    if isinstance(kind, mi.UnionType):
        return all(unacceptable(t, value, name) for t in kind.types)
    if isinstance(kind, mi.NoneType):
        return value is not None
    if isinstance(kind, mi.IntType):
        if isinstance(value, bool) or not isinstance(value, int):
            return True
        return value < 0 or (value > MAX_SEQ and name not in CAPPED)
    if isinstance(kind, mi.FloatType):
        return isinstance(value, bool) or not isinstance(value, int | float)
    if isinstance(kind, mi.StrType):
        return not isinstance(value, str) or _bad_text(value)
    if isinstance(kind, mi.BoolType):
        return not isinstance(value, bool)
    if isinstance(kind, mi.LiteralType):
        return value not in kind.values
    if isinstance(kind, mi.VarTupleType | mi.ListType):
        return not isinstance(value, list) or any(
            unacceptable(kind.item_type, item, name) for item in value
        )
    if isinstance(kind, mi.DictType):
        return not isinstance(value, dict) or _bad_json(value)
    if isinstance(kind, mi.StructType):
        return not isinstance(value, dict) or refused_payload(kind.cls, value)
    return False


def refused_payload(struct: type[msgspec.Struct], payload: Mapping[str, Any]) -> bool:
    """Whether ``payload`` holds a value ``struct`` cannot take (or lacks a required one)."""
    for info in mi.type_info(struct).fields:  # type: ignore[attr-defined]
        if info.encode_name not in payload:
            if info.required:
                return True
            continue
        if unacceptable(info.type, payload[info.encode_name], info.name):
            return True
    return False


# -- the wire -------------------------------------------------------------------------------

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def frame(join_ref: str | None, ref: str, topic: str, event: str, payload: Any) -> str:
    """A text frame as a JavaScript client writes it: lone surrogates as ``\\uXXXX`` escapes."""
    text = json.dumps([join_ref, ref, topic, event, payload], ensure_ascii=False)
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


@dataclass(frozen=True)
class Answer:
    """What a node answered one push: the reply's status and response, or what went wrong."""

    status: str
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[Any, ...]:
        """What must be the same on both stores."""
        return (self.status, self.response.get("reason"), self.response.get("field"))


@dataclass
class Session:
    """One node's client (alice) with her user and conversation channels joined."""

    node: RunningNode
    client: PhoenixClient
    user_id: str
    conversation_topic: str
    refs: int = 0

    async def new_conversation(self) -> None:
        """A new group of hers with bob and one message of hers, joined."""
        created = await self.client.push(
            f"user:{self.user_id}", "create_conversation", {"kind": "group", "members": ["bob"]}
        )
        self.conversation_topic = "conversation:" + created["conversation"]["id"]
        await self.client.join(self.conversation_topic)
        first = {"client_id": "first", "content": "one"}
        await self.client.push(self.conversation_topic, "send_message", first)

    async def push(self, topic: str, event: str, payload: Any) -> Answer:
        """Send one raw frame and read its answer (sequentially: the next reply is ours)."""
        self.refs += 1
        ref = f"p{self.refs}"
        join_ref = ref if event == "phx_join" else self.client.join_ref(topic)
        await self.client.send_raw(frame(join_ref, ref, topic, event, payload))
        try:
            async with asyncio.timeout(15):
                while True:
                    item = await self.client.next_event(topic, timeout=15)
                    if item.join_ref != join_ref:
                        continue  # the previous instance's close, after a join
                    if item.event == "phx_reply":
                        reply = item.payload
                        return Answer(str(reply.get("status")), dict(reply.get("response", {})))
                    if item.event in ("phx_error", "phx_close"):
                        return Answer(item.event)
        except (TimeoutError, ConnectionError):
            return Answer("closed" if self.client.closed else "no reply")


async def open_session(node: RunningNode, user_id: str, client: PhoenixClient) -> Session:
    await client.join(f"user:{user_id}")
    session = Session(node, client, user_id, "")
    await session.new_conversation()
    return session


# -- the nodes ------------------------------------------------------------------------------

#: The payloads' checks alone: no rate limit and no abuse watch may answer first (a run
#: creates and joins far more than a client would).
NODE_ENV = {
    "WHISPR_RATE_LIMIT_PER_MINUTE": "1000000",
    **{
        f"WHISPR_RATE_LIMIT_{name}_PER_MINUTE": "1000000"
        for name in ("EDIT", "REACT", "TYPING", "JOIN", "CREATE_CONVERSATION")
    },
    **{
        f"WHISPR_ABUSE_{pattern}": "1000000"
        for pattern in ("DUPLICATES", "CREATIONS", "JOINS", "REFUSALS")
    },
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def nodes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[list[RunningNode]]:
    """A node on the embedded store and, when the services answer, one on PostgreSQL+Redis."""
    path: Path = tmp_path_factory.mktemp("event-payloads") / "node.db"
    running = [await start_node({**NODE_ENV, "WHISPR_SQLITE_PATH": str(path)})]
    try:
        try:
            postgres_url = request.getfixturevalue("postgres_url")
            redis_url = request.getfixturevalue("redis_url")
        except pytest.skip.Exception:
            yield running
            return
        async with services.private_schema(postgres_url) as schema:
            env = {
                **NODE_ENV,
                "WHISPR_DATABASE_URL": schema.url,
                "WHISPR_REDIS_URL": redis_url,
                "WHISPR_REDIS_PREFIX": unique("t"),
                "WHISPR_NODE_NAME": unique("node"),
            }
            running.append(await start_node(env))
            try:
                yield running
            finally:
                await stop_tree(running.pop().root, deadline=10)
    finally:
        await stop_tree(running[0].root, deadline=10)


# -- the property ---------------------------------------------------------------------------

#: Events after which, accepted, the pushing user is no longer in the conversation.
MEMBERSHIP_ENDING = frozenset({"leave"})

#: (channel kind, event, payload struct): every client event of every kind, and the join.
EVENTS = [
    (kind, event, struct)
    for kind, cls in CHANNELS.items()
    for event, (struct, _handler) in sorted(cls.table.events.items())
] + [("conversation", "phx_join", ConversationJoin)]


def draw(struct: type[msgspec.Struct], baseline: Mapping[str, Any]) -> list[dict[str, Any]]:
    """:data:`EXAMPLES` payloads for ``struct``, each fitting in one frame."""
    drawn: list[dict[str, Any]] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(payload=payloads(struct, baseline))
    def collect(payload: dict[str, Any]) -> None:
        if len(frame("1", "1", "conversation:x", "e", payload).encode()) <= MAX_FRAME:
            drawn.append(payload)

    collect()
    return drawn


def _strings(value: Any) -> list[str]:
    """Every string in a payload, its keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    return []


def _without_echoes(message: str, payload: dict[str, Any]) -> str:
    """A refusal's message without the payload's own strings, which it may quote (a user id
    drawn as "PostgresKeys" is the client's word, not the database's)."""
    for value in sorted(_strings(payload), key=len, reverse=True):
        if value:
            message = message.replace(value, "")
    return message


def problems(struct: type[msgspec.Struct], payload: dict[str, Any], answer: Answer) -> list[str]:
    """What is wrong with ``answer`` to ``payload`` (nothing: an empty list)."""
    found = []
    if answer.status not in ("ok", "error"):
        found.append(f"answered {answer.status}")
    if DATABASE_WORDS.search(_without_echoes(str(answer.response.get("message", "")), payload)):
        found.append(f"a database's words: {answer.response.get('message')!r}")
    if answer.status == "error" and answer.response.get("reason") == "invalid":
        names = {info.encode_name for info in mi.type_info(struct).fields}  # type: ignore[attr-defined]
        # A payload that names none of its fields ("give at least one of ...") has none to name.
        if answer.response.get("field") not in names and names & payload.keys():
            found.append(f"invalid without a field of the payload: {answer.response}")
    if answer.status == "ok" and refused_payload(struct, payload):
        found.append("accepted a value the event cannot take")
    if refused_payload(struct, payload) and answer.response.get("reason") not in (
        "invalid",
        "too_large",
    ):
        found.append(f"refused as {answer.response.get('reason')!r}, not invalid")
    return found


@pytest.mark.parametrize(("kind", "event", "struct"), EVENTS, ids=[e for _, e, _ in EVENTS])
async def test_every_payload_is_answered_alike_on_both_stores(
    nodes: list[RunningNode], kind: str, event: str, struct: type[msgspec.Struct]
) -> None:
    examples = draw(struct, BASELINES.get(event, {}))
    # A struct without fields has one payload ({}); every other gets most of its draws.
    wanted = EXAMPLES // 2 if mi.type_info(struct).fields else 1  # type: ignore[attr-defined]
    assert len(examples) >= wanted, "too few payloads fit in a frame"
    user_id = unique("alice")
    async with contextlib.AsyncExitStack() as stack:
        sessions = []
        for node in nodes:
            client = await stack.enter_async_context(node.client(user_id))
            sessions.append(await open_session(node, user_id, client))
        wrong: list[tuple[str, Any, Any]] = []
        for payload in examples:
            answers = []
            for session in sessions:
                topic = (
                    session.conversation_topic if kind == "conversation" else f"{kind}:{user_id}"
                )
                answers.append(await session.push(topic, event, payload))
                for problem in problems(struct, payload, answers[-1]):
                    wrong.append((session.node.node.settings.node_name, payload, problem))
                if event == "phx_join" and answers[-1].status != "closed":
                    await session.client.join(topic)  # the client's own instance again
                if event in MEMBERSHIP_ENDING and answers[-1].status == "ok":
                    await session.new_conversation()  # she left: the next payload gets another
            if len({a.key for a in answers}) > 1:
                wrong.append(("stores differ", payload, [a.key for a in answers]))
            if any(a.status in ("closed", "no reply") for a in answers):
                break  # nothing more to learn on a dead socket
        for session in sessions:  # the channel still serves
            sent = await session.client.push(
                session.conversation_topic,
                "send_message",
                {"client_id": f"after-{event}", "content": "still here"},
            )
            assert sent["seq"] >= 1
            assert session.client.closed is None
    assert wrong == [], f"{event}: {len(wrong)} wrong answers, first: {wrong[:5]}"
