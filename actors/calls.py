"""Typed calls: how ``Messaging`` asks a conversation's actor to do something.

A :class:`Call` holds one of the actor's functions and its arguments; the
actor runs it on its loop (``ConversationActor.on_receive``) and the ask is
answered with what it returns, or with what the coroutine it returns gives.
The function is passed as itself (``ConversationActor.send``), not by name
as in pykka's ``ProxyCall``, so that ``Messaging._ask`` can be typed: mypy
checks the arguments against the function and gives the caller the type of
the answer. Like a ``ProxyCall`` ask, it needs no proxy (an introspection of
the whole actor, and memory held per actor).

A call made under a sampled span carries that span's context (``trace``), so
that the actor's spans for it join the caller's trace: the actor runs the call
in its own context, where the caller's is not current (see ``actors/tracing.py``).

A handler that answers later (``AsyncioActor.defer_reply``: a send is
answered once it is committed) returns :data:`DEFERRED`, typed
``Deferred[T]`` with ``T`` the answer to come, so that the caller's type is
the answer's and not ``None``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar, final

import msgspec
from opentelemetry.context import Context

__all__ = ["DEFERRED", "Call", "Deferred"]

T = TypeVar("T")


class Call(msgspec.Struct, frozen=True):
    """Run ``fn(actor, *args, **kwargs)`` on the actor; answer with its result.

    Untyped by itself: ``Messaging._ask`` builds every call and is where the
    function, its arguments and its answer are checked together.
    """

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    #: The caller's trace context when its span is sampled, else None.
    trace: Context | None = None


@final
class Deferred(Generic[T]):
    """What a handler returns when its answer, a ``T``, is given later by ``reply``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DEFERRED"


DEFERRED: Final[Deferred[Any]] = Deferred()
"""The one :class:`Deferred`: the value is ignored, its type tells the answer's."""
