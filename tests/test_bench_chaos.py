"""The chaos checker flags each broken promise on a made-up history; a clean one passes."""

from __future__ import annotations

import random

from whispr.bench.chaos import FAULT_KINDS, ChaosScenario, _conversation_sizes, _plan
from whispr.bench.chaos_check import Delivery, History, Send, check

TOPIC = "conversation:c1"


def _clean() -> History:
    """Two members, three messages; b reconnected once (after seq 1) and caught up."""
    return History(
        sends=[
            Send(TOPIC, "a", "a-1", 0.0, 0.1, (1,)),
            Send(TOPIC, "a", "a-2", 1.0, 1.1, (2,)),
            Send(TOPIC, "b", "b-1", 2.0, 9.0, (3, 3)),  # retried after a lost reply: same seq
            Send(TOPIC, "b", "b-2", 3.0, 4.0, gave_up="store_unavailable"),
        ],
        received={
            ("a", TOPIC): [Delivery(1, 0), Delivery(2, 0), Delivery(3, 0)],
            ("b", TOPIC): [Delivery(1, 0), Delivery(2, 0), Delivery(2, 1), Delivery(3, 1)],
        },
        # b rejoined with last_seq 1, so seq 2 coming again on its new connection is catch-up.
        joined_with={("a", TOPIC): [0], ("b", TOPIC): [0, 1]},
        stored={TOPIC: [(1, "a", "a-1"), (2, "a", "a-2"), (3, "b", "b-1")]},
    )


def _failed(history: History) -> set[str]:
    result = check(history, send_bound_s=30.0)
    return {name for name, verdict in result["verdicts"].items() if not verdict["ok"]}


def test_a_clean_history_passes() -> None:
    result = check(_clean(), send_bound_s=30.0)
    assert result["ok"], result["verdicts"]
    assert result["counts"]["acknowledged"] == 3
    assert result["counts"]["given_up"] == 1


def test_a_lost_acknowledged_message_is_flagged() -> None:
    history = _clean()
    history.stored[TOPIC] = history.stored[TOPIC][:2]
    for member in ("a", "b"):
        history.received[(member, TOPIC)] = [
            d for d in history.received[(member, TOPIC)] if d.seq != 3
        ]
    assert _failed(history) == {"no_acknowledged_message_lost"}


def test_a_retry_acknowledged_at_another_seq_is_flagged() -> None:
    history = _clean()
    history.sends[2] = Send(TOPIC, "b", "b-1", 2.0, 9.0, (3, 4))
    assert "no_acknowledged_message_lost" in _failed(history)


def test_a_duplicate_is_flagged() -> None:
    history = _clean()
    history.received[("a", TOPIC)].append(Delivery(2, 0))
    assert _failed(history) == {"no_duplicates"}
    stored_twice = _clean()
    stored_twice.stored[TOPIC].append((4, "a", "a-2"))
    for member in ("a", "b"):
        stored_twice.received[(member, TOPIC)].append(Delivery(4, 1 if member == "b" else 0))
    assert "no_duplicates" in _failed(stored_twice)


def test_a_message_below_the_rejoin_cursor_is_a_duplicate() -> None:
    history = _clean()
    history.received[("b", TOPIC)].append(Delivery(1, 1))  # b said it held seq 1
    assert _failed(history) == {"no_duplicates"}


def test_a_gap_is_flagged() -> None:
    history = _clean()
    history.stored[TOPIC] = [(1, "a", "a-1"), (2, "a", "a-2"), (4, "b", "b-1")]
    history.sends[2] = Send(TOPIC, "b", "b-1", 2.0, 9.0, (4,))
    for member in ("a", "b"):
        history.received[(member, TOPIC)] = [
            Delivery(4, d.session) if d.seq == 3 else d for d in history.received[(member, TOPIC)]
        ]
    assert _failed(history) == {"seqs_gap_free_in_order"}


def test_a_missing_delivery_is_flagged() -> None:
    history = _clean()
    history.received[("a", TOPIC)].pop()
    assert _failed(history) == {"every_client_got_every_message"}


def test_a_hung_send_is_flagged() -> None:
    history = _clean()
    history.sends.append(Send(TOPIC, "a", "a-3", 5.0, None))
    history.sends.append(Send(TOPIC, "a", "a-4", 5.0, 500.0, gave_up="timeout"))
    result = check(history, send_bound_s=30.0)
    assert result["verdicts"]["no_send_hung"]["count"] == 2
    assert _failed(history) == {"no_send_hung"}


def test_conversations_are_of_2_to_50_members_and_hold_every_client() -> None:
    for clients in (2, 3, 51, 120, 500):
        sizes = _conversation_sizes(clients, random.Random(clients))
        assert sum(sizes) == clients
        assert all(2 <= size <= 50 for size in sizes)


def test_the_plan_has_each_kind_then_the_random_ones_in_time_order() -> None:
    scenario = ChaosScenario(duration=100.0, random_faults=3, seed=7)
    plan = _plan(scenario, random.Random(scenario.seed))
    assert len(plan) == len(FAULT_KINDS) + 3
    assert set(FAULT_KINDS) <= {f.kind for f in plan}
    assert [f.planned_s for f in plan] == sorted(f.planned_s for f in plan)
    assert all(0 < f.planned_s <= 80.0 for f in plan)
    again = _plan(scenario, random.Random(scenario.seed))
    assert [(f.kind, f.planned_s) for f in again] == [(f.kind, f.planned_s) for f in plan]


def test_a_send_acknowledged_after_the_removal_is_flagged() -> None:
    history = _clean()
    history.stored[TOPIC].append((4, "system", "sys-1"))  # b removed: its system message
    history.received[("a", TOPIC)].append(Delivery(4, 0))
    history.removals[("b", TOPIC)] = (5.0, 4)
    assert _failed(history) == set()  # b's sends began before; b need not get seq 4
    late = _clean()
    late.removals[("b", TOPIC)] = (1.5, 2)  # acknowledged before b-1 began, b-1 at seq 3
    assert _failed(late) == {"nothing_acked_after_removal"}
    verdict = check(late, send_bound_s=30.0)["verdicts"]["nothing_acked_after_removal"]
    assert verdict["count"] == 2  # acknowledged after, and stored after
