"""Chaos: kill workers and whole supervisors under steady load; the tree must recover.

A root supervisor runs three group supervisors (one_for_one, rest_for_one,
one_for_all) of 50 named workers each (names through ``Registry.via``) and a
DynamicSupervisor of 200 transient and temporary workers. Producers ask and
tell random workers while a killer kills random workers and now and then a
whole group. Then:

- the tree recovers: every permanent and transient child runs again, every
  name points at its live worker, and only the killed temporaries are gone;
- no ask hangs: each one returns or fails with ``ActorDeadError`` within a bound;
- exactly once: a worker logs a message id and answers it in the same step, so
  the ids of the asks that succeeded are exactly the ids in the workers' logs,
  each in the log of the incarnation that answered, and no log repeats an id.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pykka
import pytest

from supervisors import (
    AsyncioActor,
    ChildSpec,
    DynamicSupervisor,
    Ref,
    Registry,
    Restart,
    Strategy,
    Supervisor,
    request_shutdown,
)

pytestmark = pytest.mark.chaos

DURATION = 2.5  # seconds of load and kills
ASK_BOUND = 5.0  # an ask not answered within this is a hang
RECOVERY_BOUND = 20.0
WORKERS = 50
DYNAMIC = 200
GROUPS = [
    ("g0", Strategy.ONE_FOR_ONE),
    ("g1", Strategy.REST_FOR_ONE),
    ("g2", Strategy.ONE_FOR_ALL),
]

Logs = dict[str, list[int]]


class ChaosWorker(AsyncioActor):
    def __init__(self, logs: Logs) -> None:
        super().__init__()
        self.log = logs.setdefault(self.actor_urn, [])
        self.told = 0

    async def on_receive(self, message: Any) -> Any:
        kind, message_id = message
        await asyncio.sleep(0)  # a kill may land here: then nothing is logged or answered
        if kind == "tell":
            self.told += 1
            return None
        # Logged and answered in the same step: no await in between.
        self.log.append(message_id)
        return message_id, self.actor_urn


@pytest.fixture
async def quiet() -> AsyncIterator[None]:
    # Thousands of crash reports with tracebacks: noise here, and slow.
    logger = logging.getLogger("supervisors")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def restart_for(group: str, index: int) -> Restart:
    if group == "g1" and index % 2:
        return Restart.TRANSIENT
    return Restart.PERMANENT


async def test_the_tree_recovers_and_every_answered_ask_was_handled_once(quiet: None) -> None:
    rng = random.Random(1234)
    logs: Logs = {}
    registry = Registry()
    names = [f"{group}-w{i}" for group, _ in GROUPS for i in range(WORKERS)]

    def group_spec(group: str, strategy: Strategy) -> ChildSpec:
        specs = [
            ChildSpec(
                f"w{i}",
                registry.via(f"{group}-w{i}", lambda: ChaosWorker.start(logs)),
                restart=restart_for(group, i),
            )
            for i in range(WORKERS)
        ]
        return ChildSpec.supervisor(
            Supervisor,
            specs,
            id=group,
            strategy=strategy,
            max_restarts=100_000,
            max_seconds=1,
            name=group,
        )

    dynamic_spec = ChildSpec.supervisor(
        DynamicSupervisor, id="dyn", max_restarts=100_000, max_seconds=1, name="dyn"
    )
    root = Supervisor.start(
        [group_spec(g, s) for g, s in GROUPS] + [dynamic_spec],
        max_restarts=100_000,
        max_seconds=1,
        name="root",
    )
    await asyncio.wait_for(root.started(), RECOVERY_BOUND)
    root_children = {i.id: i.ref for i in await root.proxy().which_children()}
    dyn = root_children["dyn"]
    assert dyn is not None
    for i in range(DYNAMIC):
        restart = Restart.TEMPORARY if i % 2 else Restart.TRANSIENT
        spec = ChildSpec(f"d{i}", lambda: ChaosWorker.start(logs), restart=restart)
        await dyn.proxy().start_child(spec)
    infos = await dyn.proxy().which_children()
    dyn_refs: list[Ref[Any]] = [i.ref for i in infos]
    temporaries = {i.ref for i in infos if i.restart is Restart.TEMPORARY}
    assert len(temporaries) == DYNAMIC // 2
    killed_temporaries: set[Ref[Any]] = set()
    ids = itertools.count()
    answered: dict[int, str] = {}
    dead = 0
    hung: list[int] = []
    unexpected: list[BaseException] = []
    stop = asyncio.Event()
    stats = Counter[str]()

    async def ask(ref: Ref[Any]) -> None:
        nonlocal dead
        message_id = next(ids)
        try:
            got_id, urn = await asyncio.wait_for(ref.ask_async(("work", message_id)), ASK_BOUND)
        except pykka.ActorDeadError:
            dead += 1
        except TimeoutError:
            hung.append(message_id)
        except Exception as exc:
            unexpected.append(exc)
        else:
            assert got_id == message_id
            answered[message_id] = urn

    def pick() -> Ref[Any] | None:
        if rng.random() < 0.25:
            return rng.choice(dyn_refs)
        return registry.whereis(rng.choice(names))

    async def producer() -> None:
        while not stop.is_set():
            batch = [ref for ref in (pick() for _ in range(20)) if ref is not None]
            for ref in batch[:5]:
                try:
                    ref.tell(("tell", next(ids)))
                    stats["told"] += 1
                except pykka.ActorDeadError:
                    stats["tell to dead"] += 1
            await asyncio.gather(*(ask(ref) for ref in batch))

    async def refresh_dynamic() -> None:
        nonlocal dyn_refs
        while not stop.is_set():
            dyn_refs = [i.ref for i in await dyn.proxy().which_children()] or dyn_refs
            await asyncio.sleep(0.05)

    async def killer() -> None:
        while not stop.is_set():
            await asyncio.sleep(0.004)
            roll = rng.random()
            if roll < 0.01:
                group = rng.choice(GROUPS)[0]
                current = {i.id: i.ref for i in await root.proxy().which_children()}
                ref = current.get(group)
                if ref is not None:
                    ref.kill("chaos")
                    stats["groups killed"] += 1
            elif roll < 0.2:
                ref = rng.choice(dyn_refs)
                if ref.is_alive():
                    ref.kill("chaos")
                    stats["dynamic killed"] += 1
                    if ref in temporaries:  # never restarted: one fewer child for good
                        killed_temporaries.add(ref)
            else:
                ref = registry.whereis(rng.choice(names))
                if ref is not None:
                    ref.kill("chaos")
                    stats["workers killed"] += 1

    tasks = [asyncio.ensure_future(producer()) for _ in range(4)]
    tasks += [asyncio.ensure_future(killer()), asyncio.ensure_future(refresh_dynamic())]
    await asyncio.sleep(DURATION)  # the length of the run, not a synchronisation
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), ASK_BOUND * 2)

    # -- no ask hung, nothing unexpected ------------------------------------------------
    assert hung == []
    assert unexpected == []
    assert stats["workers killed"] > 0
    assert stats["dynamic killed"] > 0
    assert len(answered) > 100

    # -- the tree recovers ----------------------------------------------------------------
    deadline = time.monotonic() + RECOVERY_BOUND
    while True:
        problems = await _recovery_problems(root, registry, dyn, len(killed_temporaries))
        if not problems:
            break
        assert time.monotonic() < deadline, problems
        await asyncio.sleep(0.02)
    assert root.is_alive()

    # -- exactly once ---------------------------------------------------------------------
    for urn, log in logs.items():
        assert len(log) == len(set(log)), f"{urn} handled an id twice"
    logged = Counter(i for log in logs.values() for i in log)
    assert all(count == 1 for count in logged.values()), "an id was handled twice"
    assert set(logged) == set(answered), "handled but unanswered, or answered but not handled"
    for message_id, urn in answered.items():
        assert message_id in logs[urn]

    request_shutdown(root)
    await asyncio.wait_for(root.wait_exit(), RECOVERY_BOUND)


async def _recovery_problems(
    root: Ref[Any], registry: Registry, dyn: Ref[Any], temporaries_killed: int
) -> list[str]:
    problems: list[str] = []
    try:
        top = await root.proxy().which_children()
    except pykka.ActorDeadError:
        return [f"root died: {root.exit_reason}"]
    for info in top:
        if info.ref is None or not info.ref.is_alive():
            problems.append(f"{info.id} not running")
            continue
        if info.id == "dyn":
            if info.ref is not dyn:
                problems.append("the dynamic supervisor was replaced")
            counts = await info.ref.proxy().count_children()
            if counts.active != DYNAMIC - temporaries_killed:
                problems.append(f"dyn runs {counts.active}")
            continue
        try:
            children = await info.ref.proxy().which_children()
        except pykka.ActorDeadError:
            problems.append(f"{info.id} is restarting")
            continue
        if len(children) != WORKERS:
            problems.append(f"{info.id} has {len(children)} children")
        for child in children:
            if child.ref is None or not child.ref.is_alive():
                problems.append(f"{info.id}/{child.id} not running")
            elif registry.whereis(f"{info.id}-{child.id}") is not child.ref:
                problems.append(f"name {info.id}-{child.id} does not lead to its worker")
    return problems
