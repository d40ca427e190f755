"""Sans-I/O core of the Phoenix Channels V2 JSON protocol (see docs/protocol.md).

- :mod:`whispr.protocol.frames`: decode/encode frames and build server frames;
- :mod:`whispr.protocol.channels`: the per-connection channel state machine;
- :mod:`whispr.protocol.presence`: Phoenix Presence state and diffs as pure functions.
"""

from whispr.protocol.channels import (
    ConnectionProtocol,
    Event,
    JoinRequested,
    LeaveRequested,
    PushReceived,
    SendFrame,
    Violation,
)
from whispr.protocol.frames import Frame, ProtocolError

__all__ = [
    "ConnectionProtocol",
    "Event",
    "Frame",
    "JoinRequested",
    "LeaveRequested",
    "ProtocolError",
    "PushReceived",
    "SendFrame",
    "Violation",
]
