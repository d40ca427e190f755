"""The chaos run's checker: what the clients saw and what the store holds, against the promises.

Kept apart from the run (no processes, no I/O) so that it can be tested on made-up histories:
a checker that passes everything proves nothing, so each of its verdicts is shown to fail on a
history that breaks that promise (tests/test_bench_chaos.py).

The promises, per conversation:

* no acknowledged message lost: every send the server acknowledged is in the store, at the
  seq the acknowledgement gave, and every retry of it (same client id) got that same seq;
* none duplicated: one stored message per (sender, client id), and no client got a seq again
  that it had already said it held (``last_seq`` on a rejoin) or twice on one connection;
* seqs gap-free and in order: the stored seqs are 1..n;
* every client got every committed message of its conversation, once catch-up finished;
* no send hung: every send ended acknowledged or given up with a reason, within the bound;
* a member removed mid-run: no send of theirs begun after the removal was acknowledged is
  acknowledged, and none of theirs is stored after the removal's system message.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Delivery", "History", "Send", "check"]


@dataclass(frozen=True)
class Send:
    """One logical send: the client id it kept over every retry, and how it ended."""

    topic: str
    sender: str
    client_id: str
    began: float
    ended: float | None
    #: The seq of each acknowledgement it got (a retry after a lost reply gets another).
    acked_seqs: tuple[int, ...] = ()
    #: Why it was given up (no acknowledgement), ``None`` when acknowledged or still open.
    gave_up: str | None = None


@dataclass(frozen=True)
class Delivery:
    """One ``new_message`` a client received, on its ``session``-th connection."""

    seq: int
    session: int


@dataclass
class History:
    """Everything the checker reads."""

    sends: list[Send] = field(default_factory=list)
    #: (member, topic) -> what that member's client received, in order.
    received: dict[tuple[str, str], list[Delivery]] = field(default_factory=dict)
    #: (member, topic) -> per session, the ``last_seq`` it joined with.
    joined_with: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    #: topic -> the stored messages: (seq, sender, client id).
    stored: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)
    #: Errors clients saw, by reason.
    errors: Counter[str] = field(default_factory=Counter)
    #: (member, topic) removed mid-run -> when the removal was acknowledged (same clock as
    #: the sends) and the seq of its system message, when found in the store.
    removals: dict[tuple[str, str], tuple[float, int | None]] = field(default_factory=dict)


def check(history: History, *, send_bound_s: float, examples: int = 5) -> dict[str, Any]:
    """Each promise's verdict (``ok`` and a few examples of what broke it) and the counts."""
    stored_at = {
        (topic, sender, client_id): seq
        for topic, rows in history.stored.items()
        for seq, sender, client_id in rows
    }
    verdicts = {
        "no_acknowledged_message_lost": _verdict(_lost(history, stored_at), examples),
        "no_duplicates": _verdict(_duplicates(history), examples),
        "seqs_gap_free_in_order": _verdict(_gaps(history.stored), examples),
        "every_client_got_every_message": _verdict(_missing(history), examples),
        "no_send_hung": _verdict(_hung(history.sends, send_bound_s), examples),
        "nothing_acked_after_removal": _verdict(_after_removal(history), examples),
    }
    acked = [s for s in history.sends if s.acked_seqs]
    counts = {
        "sends": len(history.sends),
        "acknowledged": len(acked),
        "given_up": sum(1 for s in history.sends if s.gave_up is not None),
        "stored": sum(len(rows) for rows in history.stored.values()),
        "deliveries": sum(len(d) for d in history.received.values()),
        "errors_by_reason": dict(history.errors.most_common()),
    }
    return {
        "ok": all(v["ok"] for v in verdicts.values()),
        "verdicts": verdicts,
        "counts": counts,
    }


def _verdict(problems: Iterable[str], examples: int) -> dict[str, Any]:
    found = list(problems)
    return {"ok": not found, "count": len(found), "examples": found[:examples]}


def _lost(history: History, stored_at: Mapping[tuple[str, str, str], int]) -> Iterable[str]:
    for send in history.sends:
        if not send.acked_seqs:
            continue
        seq = stored_at.get((send.topic, send.sender, send.client_id))
        if seq is None:
            yield f"{send.client_id} acknowledged (seq {send.acked_seqs[0]}) but not stored"
        elif any(acked != seq for acked in send.acked_seqs):
            yield f"{send.client_id} acknowledged as {sorted(set(send.acked_seqs))}, stored {seq}"


def _duplicates(history: History) -> Iterable[str]:
    for topic, rows in history.stored.items():
        for (sender, client_id), n in Counter((s, c) for _, s, c in rows).items():
            if n > 1:
                yield f"{topic}: {sender}/{client_id} stored {n} times"
    for (member, topic), deliveries in history.received.items():
        joins = history.joined_with.get((member, topic), [])
        seen: set[tuple[int, int]] = set()
        for delivery in deliveries:
            held = joins[delivery.session] if delivery.session < len(joins) else 0
            key = (delivery.session, delivery.seq)
            if delivery.seq <= held or key in seen:
                yield f"{member} on {topic}: seq {delivery.seq} again (session {delivery.session})"
            seen.add(key)


def _gaps(stored: Mapping[str, Sequence[tuple[int, str, str]]]) -> Iterable[str]:
    for topic, rows in stored.items():
        seqs = sorted(seq for seq, _, _ in rows)
        if seqs != list(range(1, len(seqs) + 1)):
            missing = sorted(set(range(1, (seqs[-1] if seqs else 0) + 1)) - set(seqs))
            yield f"{topic}: stored seqs not 1..{len(seqs)} (missing {missing[:5]})"


def _missing(history: History) -> Iterable[str]:
    for (member, topic), deliveries in history.received.items():
        if (member, topic) in history.removals:
            continue  # removed: what came after is not theirs to get
        got = {d.seq for d in deliveries}
        wanted = {seq for seq, _, _ in history.stored.get(topic, [])}
        absent = sorted(wanted - got)
        if absent:
            yield f"{member} on {topic}: {len(absent)} missing (first {absent[:5]})"


def _hung(sends: Sequence[Send], bound_s: float) -> Iterable[str]:
    for send in sends:
        if send.ended is None:
            yield f"{send.client_id} never ended"
        elif send.ended - send.began > bound_s:
            yield f"{send.client_id} took {send.ended - send.began:.1f} s (bound {bound_s:g} s)"


def _after_removal(history: History) -> Iterable[str]:
    for (member, topic), (acked_at, removal_seq) in history.removals.items():
        for send in history.sends:
            mine = (send.sender, send.topic) == (member, topic)
            if mine and send.acked_seqs and send.began > acked_at:
                yield f"{send.client_id} begun after {member}'s removal, acknowledged"
        if removal_seq is None:
            continue
        for seq, sender, client_id in history.stored.get(topic, []):
            if sender == member and seq > removal_seq:
                yield f"{client_id} stored at seq {seq}, after {member}'s removal ({removal_seq})"
