"""The node's supervision metrics: live actors by kind and supervisor restarts.

Both are read from what the tree already keeps or reports, never counted a second time:
the actor counts from the node when ``/metrics`` is scraped (its registry drops an actor's
name when it exits, the gateway forgets a connection when it ends), the restarts from the
supervisors' restart reports (:data:`supervisors.OnRestart`).

Labels are bounded by the code, never by traffic: ``supervisor`` is the supervisor's role
(``root``, ``conversations``, ``connections``), ``child_kind`` the child's kind (a service's
name, or ``conversation``/``connection`` for the dynamic supervisors' children, whose ids
carry a conversation id or a socket's), ``reason`` the exit (the exception's class for a
crash, else ``killed``, ``normal`` or ``shutdown``).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Hashable, Mapping
from typing import Protocol

from opentelemetry.metrics import Counter

from supervisors import Crashed, ExitReason, Killed, Normal, OnRestart, Registry
from whispr.telemetry import LabelledGauge, ObservedGauge, get_meter

__all__ = [
    "ActorCounts",
    "actor_gauge",
    "child_kind",
    "conversation_actors",
    "live_conversations",
    "restart_reason",
    "restart_reporter",
]

_METER = "whispr.actors"


class ActorCounts(Protocol):
    """What :func:`actor_gauge` reads: a node's live actors by kind."""

    def actor_counts(self) -> Mapping[str, int]:
        """Live actors by kind (``conversation``, ``connection``)."""
        ...


def live_conversations(registry: Registry) -> int:
    """Conversation actors alive in ``registry`` (each registers as ``("conversation", id)``)."""
    return sum(
        1 for name in registry.names() if isinstance(name, tuple) and name[:1] == ("conversation",)
    )


_lock = threading.Lock()
_conversation_gauge: ObservedGauge[Registry] | None = None
_actor_gauge: LabelledGauge[ActorCounts] | None = None


def conversation_actors() -> ObservedGauge[Registry]:
    """The process's gauge of live conversation actors (``whispr_conversation_actors``).

    Read from the node's registry when ``/metrics`` is scraped, not counted at start and
    stop: the registry already drops an actor's name when it exits (crash, passivation or
    shutdown), so the gauge cannot drift from it. A soak run watches it for a leak.
    """
    global _conversation_gauge
    with _lock:
        if _conversation_gauge is None:
            _conversation_gauge = ObservedGauge(
                _METER,
                "whispr_conversation_actors",
                "conversation actors alive",
                live_conversations,
            )
        return _conversation_gauge


def actor_gauge() -> LabelledGauge[ActorCounts]:
    """The process's gauge of live actors by kind (``whispr_actors{kind}``)."""
    global _actor_gauge
    with _lock:
        if _actor_gauge is None:
            _actor_gauge = LabelledGauge(
                _METER,
                "whispr_actors",
                "actors alive, by kind (conversation, connection)",
                "kind",
                lambda node: node.actor_counts(),
            )
        return _actor_gauge


@functools.cache
def _restarts() -> Counter:
    return get_meter(_METER).create_counter(
        "whispr_supervisor_restarts",
        description="children restarted by their supervisor, by supervisor, child kind and reason",
    )


def child_kind(child_id: Hashable) -> str:
    """A child's kind: its id when that is a name, the first part of a tuple id, else its type."""
    if isinstance(child_id, str):
        return child_id
    if isinstance(child_id, tuple) and child_id and isinstance(child_id[0], str):
        return child_id[0]
    return type(child_id).__name__


def restart_reason(reason: ExitReason) -> str:
    """A bounded word for an exit: the exception's class for a crash."""
    if isinstance(reason, Crashed):
        return type(reason.exception).__name__
    if isinstance(reason, Killed):
        return "killed"
    return "normal" if isinstance(reason, Normal) else "shutdown"


def restart_reporter(supervisor: str) -> OnRestart:
    """The ``on_restart`` of the supervisor in role ``supervisor``: counts each restart."""
    counter = _restarts()

    def report(child_id: Hashable, reason: ExitReason) -> None:
        counter.add(
            1,
            {
                "supervisor": supervisor,
                "child_kind": child_kind(child_id),
                "reason": restart_reason(reason),
            },
        )

    return report
