"""``Registry``: unique names for live actors.

Elixir's ``Registry`` with ``keys: :unique``, for one event loop: a name maps
to at most one live actor, the entry goes away when the actor exits, and
:meth:`Registry.via` gives a start function that registers each incarnation of
a supervised child under the same name, so callers find the restarted actor.

:meth:`Registry.lookup_or_start` is atomic: however many coroutines ask for the
same absent name at once, exactly one start runs and all of them get its ref.

The registry belongs to the event loop's thread; call it from there.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Hashable, Iterator
from typing import Any

import pykka

from supervisors.errors import AlreadyRegistered
from supervisors.exits import ExitReason
from supervisors.ref import Monitor, Ref

__all__ = ["Registry"]

StartRef = Callable[[], "Ref[Any] | Awaitable[Ref[Any]]"]


class Registry:
    """Names to live actors; names are freed when their actor exits."""

    def __init__(self, name: str = "registry") -> None:
        self.name = name
        self._entries: dict[Hashable, tuple[Ref[Any], Monitor]] = {}
        self._starting: dict[Hashable, asyncio.Future[Ref[Any]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: Hashable) -> bool:
        return self.whereis(name) is not None

    def names(self) -> Iterator[Hashable]:
        """The names registered now."""
        return iter(list(self._entries))

    def whereis(self, name: Hashable) -> Ref[Any] | None:
        """The live actor registered as ``name``, or ``None``."""
        entry = self._entries.get(name)
        if entry is None:
            return None
        ref = entry[0]
        return ref if ref.is_alive() else None

    def register(self, name: Hashable, ref: Ref[Any]) -> None:
        """Register ``ref`` as ``name``.

        Raises:
            AlreadyRegistered: the name belongs to another live actor.
            pykka.ActorDeadError: ``ref`` is not alive.
        """
        current = self.whereis(name)
        if current is ref:
            return
        if current is not None:
            raise AlreadyRegistered(name, current)
        if not ref.is_alive():
            msg = f"{ref} not found"
            raise pykka.ActorDeadError(msg)
        stale = self._entries.pop(name, None)
        if stale is not None:
            stale[1].cancel()

        def free(dead: Ref[Any], _reason: ExitReason) -> None:
            entry = self._entries.get(name)
            if entry is not None and entry[0] is dead:
                del self._entries[name]

        self._entries[name] = (ref, ref.monitor(free))

    def unregister(self, name: Hashable) -> None:
        """Remove ``name``; the actor keeps running."""
        entry = self._entries.pop(name, None)
        if entry is not None:
            entry[1].cancel()

    async def lookup_or_start(self, name: Hashable, start: StartRef) -> Ref[Any]:
        """The actor registered as ``name``, started with ``start`` if there is none.

        Concurrent callers for the same name share one start, and get the ref
        once the actor's ``on_start`` has completed. If ``start`` fails, or the
        actor dies while starting (:class:`pykka.ActorDeadError` with the cause),
        every waiting caller gets the exception and nothing is registered.
        """
        while True:
            ref = self.whereis(name)
            if ref is not None:
                return ref
            pending = self._starting.get(name)
            if pending is None:
                break
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending.cancelled() or (task is not None and task.cancelling()):
                    raise
                # The caller that was starting it was cancelled, not this one:
                # look again, and start it here if it is still absent.
        pending = asyncio.get_running_loop().create_future()
        self._starting[name] = pending
        try:
            started = start()
            ref = await started if inspect.isawaitable(started) else started
            try:
                await ref.started()
                self.register(name, ref)
            except BaseException:
                ref.kill("lookup_or_start failed")  # nobody will ever find it
                raise
        except asyncio.CancelledError:
            pending.cancel()
            raise
        except BaseException as exc:
            pending.set_exception(exc)
            pending.exception()  # mark retrieved: a lone caller re-raises it below
            raise
        else:
            pending.set_result(ref)
            return ref
        finally:
            del self._starting[name]

    def via(self, name: Hashable, start: StartRef) -> Callable[[], Awaitable[Ref[Any]]]:
        """A start function for a ``ChildSpec`` that registers each start as ``name``.

        If the name is held by another live actor when the child (re)starts,
        the new actor is stopped and the start fails with
        :class:`AlreadyRegistered`, as OTP's ``{via, ...}`` names do.
        """

        async def start_registered() -> Ref[Any]:
            started = start()
            ref = await started if inspect.isawaitable(started) else started
            try:
                self.register(name, ref)
            except AlreadyRegistered:
                ref.kill("name already registered")
                raise
            return ref

        return start_registered
