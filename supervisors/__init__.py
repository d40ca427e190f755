"""OTP-style supervision for pykka actors on asyncio.

A small library that knows nothing of messaging: pykka's actor model (actors,
refs, ``tell``/``ask``, proxies) run on an asyncio event loop, with the parts
of Erlang/OTP that pykka lacks: exit reasons, monitors and links, supervisors
with child specs, strategies and restart intensity, dynamic supervisors, a
registry of names, and an orderly shutdown on SIGTERM.

See ``docs/supervision.md`` for the semantics and how they differ from OTP.
"""

from supervisors._loop import bind_loop
from supervisors.actor import AsyncioActor, request_shutdown
from supervisors.application import run_until_signalled, stop_tree
from supervisors.dynamic import DynamicSupervisor
from supervisors.errors import (
    AlreadyRegistered,
    ChildExists,
    ChildNotFound,
    MaxChildrenReached,
    RestartIntensityExceeded,
    StartChildError,
    SupervisorError,
)
from supervisors.exits import (
    Crashed,
    ExitReason,
    InjectedCrash,
    Killed,
    LinkedExit,
    Normal,
    Shutdown,
)
from supervisors.future import AsyncioFuture, wait_for_future
from supervisors.ref import ExitSignal, Monitor, Ref
from supervisors.registry import Registry
from supervisors.spec import (
    ChildCounts,
    ChildInfo,
    ChildSpec,
    ChildType,
    OnRestart,
    Restart,
    Strategy,
)
from supervisors.supervisor import Supervisor
from supervisors.threaded import ThreadActor

__all__ = [
    "AlreadyRegistered",
    "AsyncioActor",
    "AsyncioFuture",
    "ChildCounts",
    "ChildExists",
    "ChildInfo",
    "ChildNotFound",
    "ChildSpec",
    "ChildType",
    "Crashed",
    "DynamicSupervisor",
    "ExitReason",
    "ExitSignal",
    "InjectedCrash",
    "Killed",
    "LinkedExit",
    "MaxChildrenReached",
    "Monitor",
    "Normal",
    "OnRestart",
    "Ref",
    "Registry",
    "Restart",
    "RestartIntensityExceeded",
    "Shutdown",
    "StartChildError",
    "Strategy",
    "Supervisor",
    "SupervisorError",
    "ThreadActor",
    "bind_loop",
    "request_shutdown",
    "run_until_signalled",
    "stop_tree",
    "wait_for_future",
]
