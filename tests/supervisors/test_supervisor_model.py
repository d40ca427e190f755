"""A stateful property test: a real Supervisor against a pure model of OTP's rules.

Hypothesis picks a strategy, restart intensity and children, then applies
random events (crashes, normal exits, shutdowns, kills, the OTP API, time
passing). After every step the supervisor's ``which_children()`` must match
the model: which ids exist, which run, which were replaced by a new
incarnation; and the supervisor must escalate exactly when the model says.
Time is a fake clock handed to the supervisor, so intensity is deterministic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

import pykka
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from supervisors import (
    ChildExists,
    ChildSpec,
    Crashed,
    Ref,
    Restart,
    RestartIntensityExceeded,
    Strategy,
    Supervisor,
    request_shutdown,
)
from tests.supervisors._helpers import Worker

T = TypeVar("T")
WINDOW = 10.0  # max_seconds
BOUND = 2.0  # seconds any one step may take


@dataclass
class ModelChild:
    id: str
    restart: Restart
    alive: bool = True
    incarnation: int = 0


def should_restart(restart: Restart, abnormal: bool) -> bool:
    return restart is Restart.PERMANENT or (restart is Restart.TRANSIENT and abnormal)


class SupervisorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.now = 0.0
        self.strategy = Strategy.ONE_FOR_ONE
        self.max_restarts = 0
        self.sup: Ref[Supervisor] | None = None
        self.model: list[ModelChild] = []
        self.restarts: list[float] = []
        self.escalated = False
        self.new_ids = 0
        # What the last check saw: id -> (ref, model incarnation then).
        self.seen: dict[Hashable, tuple[Ref[Any], int]] = {}
        self.every_ref: list[Ref[Any]] = []
        # Every crash is logged with its traceback: noise here, and slow.
        self._logger = logging.getLogger("supervisors")
        self._level = self._logger.level
        self._logger.setLevel(logging.CRITICAL)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(coroutine, BOUND))

    def teardown(self) -> None:
        async def stop() -> None:
            if self.sup is not None and self.sup.exit_reason is None:
                self.sup.kill("test over")
            for ref in self.every_ref:
                ref.kill("test over")
            await asyncio.sleep(0)

        try:
            self.run(stop())
        finally:
            self.loop.close()
            self._logger.setLevel(self._level)

    # -- the model ------------------------------------------------------------------------

    def _spec(self, child: ModelChild) -> ChildSpec:
        def start() -> Ref[Any]:
            ref = Worker.start(child.id)
            self.every_ref.append(ref)
            return ref

        return ChildSpec(child.id, start, restart=child.restart)

    def _index(self, child_id: str) -> int:
        return next(i for i, c in enumerate(self.model) if c.id == child_id)

    def model_exit(self, child_id: str, abnormal: bool) -> None:
        index = self._index(child_id)
        child = self.model[index]
        child.alive = False
        if not should_restart(child.restart, abnormal):
            if child.restart is Restart.TEMPORARY:
                del self.model[index]
            return
        self.restarts.append(self.now)
        self.restarts = [t for t in self.restarts if t > self.now - WINDOW]
        if len(self.restarts) > self.max_restarts:
            self.escalated = True
            for c in self.model:
                c.alive = False
            return
        if self.strategy is Strategy.ONE_FOR_ONE:
            group = [child]
        else:
            first = 0 if self.strategy is Strategy.ONE_FOR_ALL else index
            group = [
                c for c in self.model[first:] if c is child or c.restart is not Restart.TEMPORARY
            ]
            # Temporary siblings are terminated and forgotten.
            self.model = [c for c in self.model if c in group or c not in self.model[first:]]
        for c in group:
            c.alive = True
            c.incarnation += 1

    # -- checks ---------------------------------------------------------------------------

    def check(self) -> None:
        sup = self.sup
        assert sup is not None
        # Asked after the event, so answered after the supervisor has dealt
        # with it; a supervisor that gave up answers ActorDeadError at once.
        try:
            infos = self.run(sup.proxy().which_children())
        except pykka.ActorDeadError:
            assert self.escalated, f"supervisor exited: {sup.exit_reason}"
            reason = self.run(sup.wait_exit())
            assert isinstance(reason, Crashed)
            assert isinstance(reason.exception, RestartIntensityExceeded)
            assert not any(ref.is_alive() for ref in self.every_ref)
            return
        assert not self.escalated, "the supervisor should have given up"
        assert [i.id for i in infos] == [c.id for c in self.model]
        for info, child in zip(infos, self.model, strict=True):
            assert info.restart is child.restart
            if not child.alive:
                assert info.ref is None, f"{child.id} should not run"
                continue
            assert info.ref is not None, f"{child.id} should run"
            assert isinstance(info.ref, Ref)
            assert info.ref.is_alive()
            previous = self.seen.get(child.id)
            if previous is not None:
                old_ref, old_incarnation = previous
                if child.incarnation == old_incarnation:
                    assert info.ref is old_ref, f"{child.id} was replaced"
                else:
                    assert info.ref is not old_ref, f"{child.id} was not replaced"
                    assert not old_ref.is_alive()
            self.seen[child.id] = (info.ref, child.incarnation)
        counts = self.run(sup.proxy().count_children())
        assert counts.specs == len(self.model)
        assert counts.active == sum(1 for c in self.model if c.alive)

    def alive_ids(self) -> list[str]:
        return [c.id for c in self.model if c.alive]

    def current_ref(self, child_id: str) -> Ref[Any]:
        ref, _ = self.seen[child_id]
        return ref

    # -- rules ----------------------------------------------------------------------------

    @initialize(
        strategy=st.sampled_from(list(Strategy)),
        restarts=st.lists(st.sampled_from(list(Restart)), min_size=1, max_size=4),
        max_restarts=st.integers(min_value=0, max_value=3),
    )
    def start(self, strategy: Strategy, restarts: list[Restart], max_restarts: int) -> None:
        self.strategy = strategy
        self.max_restarts = max_restarts
        self.model = [ModelChild(f"c{i}", restart) for i, restart in enumerate(restarts)]
        specs = [self._spec(c) for c in self.model]

        async def start() -> Ref[Supervisor]:
            sup = Supervisor.start(
                specs,
                strategy=strategy,
                max_restarts=max_restarts,
                max_seconds=WINDOW,
                clock=lambda: self.now,
            )
            await sup.started()
            return sup

        self.sup = self.run(start())
        self.check()

    def _has_alive(self) -> bool:
        return not self.escalated and bool(self.alive_ids())

    @precondition(_has_alive)
    @rule(data=st.data(), how=st.sampled_from(["crash", "normal", "shutdown", "kill"]))
    def child_exits(self, data: st.DataObject, how: str) -> None:
        child_id = data.draw(st.sampled_from(self.alive_ids()), label="child")
        ref = self.current_ref(child_id)

        async def end() -> None:
            if how == "crash":
                ref.tell("crash")
            elif how == "normal":
                ref.tell("exit")
            elif how == "shutdown":
                request_shutdown(ref)
            else:
                ref.kill()
            await ref.wait_exit()

        self.run(end())
        self.model_exit(child_id, abnormal=how in ("crash", "kill"))
        self.check()

    @precondition(lambda self: not self.escalated and bool(self.model))
    @rule(data=st.data())
    def terminate_child(self, data: st.DataObject) -> None:
        child_id = data.draw(st.sampled_from([c.id for c in self.model]), label="child")
        assert self.sup is not None
        self.run(self.sup.proxy().terminate_child(child_id))
        index = self._index(child_id)
        self.model[index].alive = False
        if self.model[index].restart is Restart.TEMPORARY:
            del self.model[index]
        self.check()

    @precondition(lambda self: not self.escalated and bool(self.model))
    @rule(data=st.data())
    def restart_child(self, data: st.DataObject) -> None:
        child_id = data.draw(st.sampled_from([c.id for c in self.model]), label="child")
        assert self.sup is not None
        child = self.model[self._index(child_id)]

        async def restart() -> None:
            assert self.sup is not None
            await self.sup.proxy().restart_child(child_id)

        if child.alive:
            with pytest.raises(ChildExists):
                self.run(restart())
        else:
            self.run(restart())
            child.alive = True
            child.incarnation += 1
        self.check()

    @precondition(lambda self: not self.escalated and bool(self.model))
    @rule(data=st.data())
    def delete_child(self, data: st.DataObject) -> None:
        child_id = data.draw(st.sampled_from([c.id for c in self.model]), label="child")
        child = self.model[self._index(child_id)]

        async def delete() -> None:
            assert self.sup is not None
            await self.sup.proxy().delete_child(child_id)

        if child.alive:
            with pytest.raises(ChildExists):
                self.run(delete())
        else:
            self.run(delete())
            self.model.remove(child)
            self.seen.pop(child_id, None)
        self.check()

    @precondition(lambda self: not self.escalated and len(self.model) < 8)
    @rule(restart=st.sampled_from(list(Restart)))
    def start_child(self, restart: Restart) -> None:
        child = ModelChild(f"n{self.new_ids}", restart)
        self.new_ids += 1
        assert self.sup is not None
        self.run(self.sup.proxy().start_child(self._spec(child)))
        self.model.append(child)
        self.check()

    @rule(seconds=st.sampled_from([0.5, 3.0, 9.5, 10.0, 10.5]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @invariant()
    def supervisor_state_matches(self) -> None:
        if self.sup is not None and not self.escalated:
            assert self.sup.is_alive()


SupervisorMachine.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow],
)
TestSupervisorModel = SupervisorMachine.TestCase
