"""The private parts of pykka that ``supervisors`` builds on are there and work as relied on.

pykka is pinned to one minor release in pyproject.toml, beside a list of these names and
why each is used. An upgrade that renames or reshapes one of them fails here, by name,
instead of somewhere in the runtime: update the runtime and the list, then the pin.
"""

from __future__ import annotations

import importlib.metadata
import queue
import threading
from typing import Any

import pykka
from pykka import ActorRegistry
from pykka._envelope import Envelope
from pykka.messages import ProxyCall, _ActorStop

from supervisors._envelopes import is_stop
from supervisors.actor import _RegisteredRefs

PYKKA = importlib.metadata.version("pykka")


class _Inbox:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def put(self, envelope: Any, /) -> None:
        self.items.append(envelope)

    def get(self) -> Any:
        return self.items.pop(0)

    def empty(self) -> bool:
        return not self.items


class _Probe(pykka.Actor):
    """The smallest actor kind: what pykka asks of one, recorded."""

    #: Started probes, held here as a running actor is held by its thread or loop.
    running: list[_Probe] = []

    @staticmethod
    def _create_actor_inbox() -> _Inbox:
        return _Inbox()

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return pykka.ThreadingFuture()

    def _start_actor_loop(self) -> None:
        self.running.append(self)

    def ping(self, value: str) -> str:
        return f"pong {value}"

    def on_receive(self, message: Any) -> Any:
        return ("received", message)


def test_actor_init_sets_the_attributes_the_runtime_sets_itself() -> None:
    # AsyncioActor and ThreadActor do not call pykka.Actor.__init__: they set these.
    actor = _Probe()
    assert set(vars(actor)) == {"actor_urn", "actor_inbox", "actor_stopped", "_actor_ref"}, PYKKA
    assert isinstance(actor.actor_inbox, _Inbox)  # made by _create_actor_inbox


def test_start_registers_the_ref_and_calls_start_actor_loop() -> None:
    ref = _Probe.start()
    try:
        actor = ref._actor_weakref()
        assert isinstance(actor, _Probe)
        assert _Probe.running == [actor]
        assert ref in ActorRegistry._actor_refs
        assert ActorRegistry.get_by_urn(ref.actor_urn) is ref
    finally:
        ActorRegistry.unregister(ref)
        _Probe.running.clear()
    assert ref not in ActorRegistry._actor_refs


def test_tell_ask_and_stop_put_envelopes_in_the_inbox() -> None:
    ref = _Probe.start()
    try:
        inbox = ref.actor_inbox
        assert isinstance(inbox, _Inbox)
        ref.tell("told")
        future = ref.ask("asked", block=False)
        ref.stop(block=False)
        told, asked, stop = inbox.items
        for envelope in (told, asked, stop):
            assert type(envelope) is Envelope, PYKKA
        assert (told.message, told.reply_to) == ("told", None)
        assert asked.message == "asked"
        assert asked.reply_to is future  # the future _create_future made
        assert isinstance(future, pykka.ThreadingFuture)
        assert type(stop.message) is _ActorStop
        assert is_stop(stop.message)
        asked.reply_to = None  # defer_reply takes the future off the envelope
    finally:
        ActorRegistry.unregister(ref)
        _Probe.running.clear()


def test_envelopes_are_built_as_the_runtime_builds_them() -> None:
    future: pykka.Future[Any] = pykka.ThreadingFuture()
    envelope = Envelope("message", reply_to=future)
    assert (envelope.message, envelope.reply_to) == ("message", future)
    assert Envelope("alone").reply_to is None


def test_handle_receive_runs_proxy_calls_and_hands_the_rest_to_on_receive() -> None:
    actor = _Probe()
    assert actor._handle_receive(ProxyCall(("ping",), ("x",), {})) == "pong x"
    assert actor._handle_receive("plain") == ("received", "plain")


def test_threading_actors_run_their_actor_loop_on_their_thread() -> None:
    ran = threading.Event()

    class Looping(pykka.ThreadingActor):
        def _actor_loop(self) -> None:
            ran.set()

    ref = Looping.start()
    try:
        assert ran.wait(5), PYKKA
    finally:
        ActorRegistry.unregister(ref)
    assert callable(pykka.Actor._stop)
    assert isinstance(pykka.ThreadingActor._create_actor_inbox(), queue.Queue)


def test_the_registry_keeps_its_refs_where_the_runtime_swapped_them() -> None:
    assert isinstance(ActorRegistry._actor_refs_lock, type(threading.RLock()))
    with ActorRegistry._actor_refs_lock:
        assert isinstance(ActorRegistry._actor_refs, _RegisteredRefs)
    # _RegisteredRefs finds refs by hash: that is by identity only while refs compare so.
    assert pykka.ActorRef.__eq__ is object.__eq__
    assert pykka.ActorRef.__hash__ is object.__hash__
