"""A small supervision tree run as a program, for test_application.

``python -m tests.supervisors._tree_app MODE DEADLINE``: prints ``ready`` once
the tree is up, then runs until SIGTERM. Every actor prints ``stop NAME`` from
its ``on_stop`` and every exit is printed as ``exit NAME REASON``. In mode
``hang`` one child ignores shutdown requests.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

from supervisors import (
    AsyncioActor,
    ChildSpec,
    ExitReason,
    Ref,
    Shutdown,
    Supervisor,
    run_until_signalled,
)


class Printer(AsyncioActor):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def on_receive(self, message: Any) -> Any:
        return self.name

    def on_stop(self) -> Coroutine[Any, Any, None] | None:
        print(f"stop {self.name}", flush=True)
        return None


class Stubborn(Printer):
    async def on_stop(self) -> None:
        print(f"ignoring shutdown {self.name}", flush=True)
        await asyncio.Event().wait()


class NamedSupervisor(Supervisor):
    async def on_stop(self) -> None:
        await super().on_stop()
        print(f"stop {self.name}", flush=True)


def printer(name: str, cls: type[Printer] = Printer, **options: Any) -> ChildSpec:
    return ChildSpec(name, lambda: cls.start(name), **options)


def build(mode: str) -> Ref[Any]:
    inner = ChildSpec.supervisor(
        NamedSupervisor, [printer("c"), printer("d")], id="inner", name="inner"
    )
    children = [printer("a")]
    if mode == "hang":
        children.append(printer("stubborn", Stubborn, shutdown="infinity"))
    children += [inner, printer("b")]
    return NamedSupervisor.start(children, name="root")


def watch(root: Ref[Any]) -> None:
    async def watch_tree() -> None:
        def report(name: str) -> Any:
            return lambda _ref, reason: print(f"exit {name} {reason}", flush=True)

        root.monitor(report("root"))
        for info in await root.proxy().which_children():
            info.ref.monitor(report(str(info.id)))
            if info.id == "inner":
                for grandchild in await info.ref.proxy().which_children():
                    grandchild.ref.monitor(report(str(grandchild.id)))
        print("ready", flush=True)

    asyncio.get_running_loop().create_task(watch_tree())


async def main(mode: str, deadline: float) -> int:
    reason: ExitReason = await run_until_signalled(
        lambda: build(mode), shutdown_deadline=deadline, on_started=watch
    )
    print(f"root exit {reason}", flush=True)
    return 0 if isinstance(reason, Shutdown) else 3


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], float(sys.argv[2]))))
