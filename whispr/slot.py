"""A typed holder for what one service of a node publishes to those started after it.

The node's root is ``rest_for_one``: a service that is restarted (the store, say) opens a
new instance of its resource, and every service after it is restarted too and must get the
new instance, not the one that was closed. So a resource cannot be handed out once when the
node is built; it is published while its service runs. A :class:`Slot` is where one service
publishes it: created once per node, filled by the service's ``on_start``, emptied by its
``on_stop``, and read when a later service is started.

A slot holds one type, so reading it needs no cast and no ``None`` check; the one check,
"is the service up?", lives here and fails with :class:`NotStarted`, naming the service.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["NotStarted", "Slot"]

T = TypeVar("T")


class NotStarted(RuntimeError):
    """A slot was read while the service that fills it was not running."""

    def __init__(self, service: str) -> None:
        super().__init__(
            f"the {service} service is not running: read before it started, after it "
            "stopped, or it is disabled"
        )
        self.service = service


class Slot(Generic[T]):
    """The current value published by the service named ``service``, if it runs."""

    __slots__ = ("_value", "service")

    def __init__(self, service: str) -> None:
        self.service = service
        self._value: T | None = None

    def set(self, value: T) -> None:
        """Publish ``value``; it replaces any earlier one.

        A service that was killed never ran ``on_stop``, so its restart finds the
        killed instance's value still here: the new one takes its place.
        """
        self._value = value

    def clear(self) -> None:
        """Withdraw the value (the service is stopping): reads fail until the next ``set``."""
        self._value = None

    def get(self) -> T:
        """The published value.

        Raises:
            NotStarted: the service has not published one (not started, stopped or disabled).
        """
        value = self._value
        if value is None:
            raise NotStarted(self.service)
        return value

    def peek(self) -> T | None:
        """The published value, or None: for readers to whom "not running" is an answer."""
        return self._value

    def __repr__(self) -> str:
        state = "empty" if self._value is None else repr(self._value)
        return f"Slot({self.service!r}: {state})"
