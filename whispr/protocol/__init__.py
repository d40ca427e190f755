"""Sans-I/O core of the Phoenix Channels V2 protocol (wire format: docs/protocol.md).

The gateway moves bytes between sockets and this core; the core owns every protocol rule, so
it can be tested by feeding frames, with no sockets and no event loop.

- :mod:`whispr.protocol.frames`: decode and encode frames (JSON text and binary), and the
  frames the server sends;
- :mod:`whispr.protocol.channels`: :class:`ConnectionProtocol`, the per-connection channel
  state machine (join, leave, heartbeat, replies, crashes, limits);
- :mod:`whispr.protocol.presence`: Phoenix Presence state and diffs as pure functions.
"""

from whispr.protocol.channels import (
    ConnectionProtocol,
    Event,
    JoinRequested,
    LeaveRequested,
    ProtocolViolation,
    PushReceived,
    SocketPushReceived,
    error_response,
)
from whispr.protocol.frames import CloseCode, Frame, ProtocolError, Reason

__all__ = [
    "CloseCode",
    "ConnectionProtocol",
    "Event",
    "Frame",
    "JoinRequested",
    "LeaveRequested",
    "ProtocolError",
    "ProtocolViolation",
    "PushReceived",
    "Reason",
    "SocketPushReceived",
    "error_response",
]
