"""A service's slot: empty until its service publishes, one clear error when read early."""

from __future__ import annotations

import pytest

from whispr.slot import NotStarted, Slot


def test_reading_an_empty_slot_names_the_service() -> None:
    slot: Slot[str] = Slot("store")
    with pytest.raises(NotStarted, match="the store service is not running") as raised:
        slot.get()
    assert raised.value.service == "store"
    assert isinstance(raised.value, RuntimeError)
    assert slot.peek() is None


def test_set_publishes_and_clear_withdraws() -> None:
    slot: Slot[str] = Slot("broker")
    slot.set("first")
    assert slot.get() == "first"
    assert slot.peek() == "first"
    slot.clear()
    assert slot.peek() is None
    with pytest.raises(NotStarted, match="broker"):
        slot.get()


def test_a_restart_publishes_the_new_instance() -> None:
    slot: Slot[object] = Slot("store")
    old, new = object(), object()
    slot.set(old)
    slot.clear()  # on_stop of the instance being restarted
    slot.set(new)  # on_start of its successor
    assert slot.get() is new


def test_a_killed_services_value_is_replaced_by_its_successors() -> None:
    # A killed service never runs on_stop: its value is still there when it restarts.
    slot: Slot[object] = Slot("store")
    old, new = object(), object()
    slot.set(old)
    slot.set(new)
    assert slot.get() is new


def test_the_repr_tells_whose_it_is_and_whether_it_is_filled() -> None:
    slot: Slot[int] = Slot("grpc")
    assert repr(slot) == "Slot('grpc': empty)"
    slot.set(7)
    assert repr(slot) == "Slot('grpc': 7)"
