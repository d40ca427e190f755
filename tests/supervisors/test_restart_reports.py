"""Restart reports: both supervisors tell ``on_restart`` of each child they restart, and a
report that raises never breaks supervision."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from supervisors import (
    ChildSpec,
    Crashed,
    DynamicSupervisor,
    ExitReason,
    Restart,
    Strategy,
    Supervisor,
)
from tests.supervisors._helpers import Boom, Worker, eventually, exit_child, within, worker_spec

Reports = list[tuple[Hashable, ExitReason]]


def _recorder(reports: Reports) -> Any:
    def record(child_id: Hashable, reason: ExitReason) -> None:
        reports.append((child_id, reason))

    return record


async def test_a_supervisor_reports_the_child_it_restarts_not_the_ones_restarted_with_it() -> None:
    log: list[tuple[str, str]] = []
    reports: Reports = []
    ref = Supervisor.start(
        [worker_spec(n, log) for n in "abc"],
        strategy=Strategy.REST_FOR_ONE,
        max_restarts=5,
        on_restart=_recorder(reports),
    )
    await within(ref.started())
    children = {info.id: info.ref for info in await within(ref.proxy().which_children())}
    b = children["b"]
    assert b is not None

    await exit_child(b, "crash")
    await eventually(lambda: bool(reports), what="a restart report")

    assert [child for child, _ in reports] == ["b"]
    reason = reports[0][1]
    assert isinstance(reason, Crashed)
    assert isinstance(reason.exception, Boom)
    ref.stop(block=False)
    await within(ref.wait_exit())


async def test_a_supervisor_does_not_report_a_child_it_does_not_restart() -> None:
    log: list[tuple[str, str]] = []
    reports: Reports = []
    ref = Supervisor.start(
        [worker_spec("t", log, restart=Restart.TRANSIENT)], on_restart=_recorder(reports)
    )
    await within(ref.started())
    (info,) = await within(ref.proxy().which_children())
    await exit_child(info.ref, "normal")  # a transient child exiting normally stays down
    await within(ref.proxy().which_children())  # the supervisor has handled the exit
    assert reports == []
    ref.stop(block=False)
    await within(ref.wait_exit())


async def test_a_dynamic_supervisor_reports_each_restart_and_survives_a_failing_report() -> None:
    reports: Reports = []

    def report(child_id: Hashable, reason: ExitReason) -> None:
        reports.append((child_id, reason))
        raise RuntimeError("a broken metric")

    ref = DynamicSupervisor.start(max_restarts=10, on_restart=report)
    await within(ref.started())
    spec = ChildSpec(id=("conversation", "c1"), start=lambda: Worker.start("w"))
    child = await within(ref.proxy().start_child(spec))

    await exit_child(child, "crash")
    await eventually(lambda: bool(reports), what="a restart report")

    assert [child_id for child_id, _ in reports] == [("conversation", "c1")]
    (info,) = await within(ref.proxy().which_children())
    assert info.ref is not child  # restarted despite the report
    assert info.ref.is_alive()
    ref.stop(block=False)
    await within(ref.wait_exit())
