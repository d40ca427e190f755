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
* no client missed a committed message for longer than :data:`DELIVERY_BOUND_S`: from the
  time a send was acknowledged (or, for a client not joined then, the time it next joined
  and caught up) to the time the client received it, counted only while it was connected
  and joined. A client disconnected by a fault is exempt until it rejoins; its catch-up
  must then deliver within the bound. Its clock stops while the store cannot answer (a
  PostgreSQL outage and the store breaker's open time after it): a lost event is found and
  filled from the store, so no bound can hold while there is none. The lags measured are
  reported (max, P99);
* no send hung: every send ended acknowledged or given up with a reason, within the bound;
* a member removed mid-run: no send of theirs begun after the removal was acknowledged is
  acknowledged, and none of theirs is stored after the removal's system message.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from actors.stream import POSITION_CHECK_S

__all__ = [
    "DELIVERY_BOUND_S",
    "RECONNECT_ALLOWANCE_S",
    "Delivery",
    "History",
    "Send",
    "Session",
    "check",
]

#: Beyond the position check's interval, what one recovery may take before a connected client
#: holds a committed message: a broker's reconnection and resubscription (back-off up to 2 s,
#: then up to 2 s for Redis to confirm the subscriptions), then the gap fill's store read.
RECONNECT_ALLOWANCE_S: Final = 5.0
#: The longest a connected, joined client may miss a committed message: a live event lost
#: (a broker outage or partition, a publisher killed) is found by the next position check
#: (every ``WHISPR_POSITION_CHECK_S``, at its default) or by the resync after a broker
#: reconnect, and filled from the store.
DELIVERY_BOUND_S: Final = POSITION_CHECK_S + RECONNECT_ALLOWANCE_S


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
    #: When it was received (the sends' clock); ``None`` when not recorded.
    at: float | None = None


@dataclass(frozen=True)
class Session:
    """One connection of a client: when its join was answered (``None``: never) and when the
    connection ended (``None``: open when the history ends)."""

    joined: float | None
    closed: float | None


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
    #: (member, topic) -> its sessions, indexed as :attr:`Delivery.session`; a member without
    #: them is not measured against the delivery bound.
    sessions: dict[tuple[str, str], list[Session]] = field(default_factory=dict)
    #: When the history ends (the sends' clock): a session still open is open until then.
    ended: float = 0.0
    #: (from, to) windows in which the store could not answer: the delivery bound's clock
    #: stops in them.
    store_down: list[tuple[float, float]] = field(default_factory=list)


def check(
    history: History,
    *,
    send_bound_s: float,
    delivery_bound_s: float = DELIVERY_BOUND_S,
    examples: int = 5,
) -> dict[str, Any]:
    """Each promise's verdict (``ok`` and a few examples of what broke it) and the counts."""
    lags: list[float] = []
    late = list(_late(history, delivery_bound_s, lags))
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
        "no_client_missed_a_message_past_the_bound": _verdict(late, examples),
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
    lags.sort()
    return {
        "ok": all(v["ok"] for v in verdicts.values()),
        "verdicts": verdicts,
        "counts": counts,
        "delivery_lag": {
            "bound_s": delivery_bound_s,
            "measured": len(lags),
            "max_s": lags[-1] if lags else None,
            "p99_s": lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else None,
            "median_s": lags[len(lags) // 2] if lags else None,
        },
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


def _late(history: History, bound_s: float, lags: list[float]) -> Iterable[str]:
    """Each (member, acknowledged message) that the member, connected and joined, went without
    for longer than ``bound_s``; appends to ``lags`` every wait measured.

    The clock for a message starts when its send was acknowledged, or when the member next
    joined if it was not joined then (a client dropped by a fault is exempt until it is
    back), and runs only while the member stays on that connection: a drop stops it, and
    the next join starts it again, so a catch-up is held to the bound too.
    """
    acked: dict[str, list[tuple[int, float]]] = {}
    for send in history.sends:
        if send.acked_seqs and send.ended is not None:
            acked.setdefault(send.topic, []).append((send.acked_seqs[0], send.ended))
    for (member, topic), sessions in history.sessions.items():
        if (member, topic) in history.removals:
            continue
        first: dict[int, Delivery] = {}
        for delivery in history.received.get((member, topic), []):
            if delivery.at is not None and delivery.seq not in first:
                first[delivery.seq] = delivery
        for seq, committed in acked.get(topic, []):
            lag, problem = _wait(
                sessions, first.get(seq), committed, history.ended, bound_s, history.store_down
            )
            if lag is not None:
                lags.append(lag)
            if problem is not None:
                yield f"{member} on {topic}: seq {seq} {problem}"


def _wait(
    sessions: Sequence[Session],
    got: Delivery | None,
    committed: float,
    ended: float,
    bound_s: float,
    store_down: Sequence[tuple[float, float]] = (),
) -> tuple[float | None, str | None]:
    """How long the member waited for one message while joined (None: not measured, as when
    it never got it, which another verdict reports), and what was wrong, if anything."""
    if got is not None and got.at is not None and got.at <= committed:
        return 0.0, None  # delivered before the sender heard its acknowledgement
    for index, session in enumerate(sessions):
        if got is not None and got.at is not None and got.session == index:
            lag = _running(max(committed, session.joined or committed), got.at, store_down)
            if lag > bound_s:
                return lag, f"received {lag:.1f} s after it was due (bound {bound_s:g} s)"
            return lag, None
        if session.joined is None or (session.closed is not None and session.closed <= committed):
            continue
        began = max(committed, session.joined)
        until = session.closed if session.closed is not None else ended
        waited = _running(began, until, store_down)
        if waited > bound_s:
            return (
                waited,
                f"missing for {waited:.1f} s on a joined connection (bound {bound_s:g} s)",
            )
    return None, None


def _running(start: float, end: float, paused: Sequence[tuple[float, float]]) -> float:
    """Seconds from ``start`` to ``end`` outside the ``paused`` windows (0 if end < start)."""
    total = max(0.0, end - start)
    for low, high in paused:
        total -= max(0.0, min(end, high) - max(start, low))
    return max(0.0, total)
