"""Server-made ids: one format, unique and ordered by creation."""

from __future__ import annotations

import re

from actors.ids import new_id, system_client_id


def test_ids_are_32_hex_digits_unique_and_ordered() -> None:
    made = [new_id() for _ in range(10_000)]  # many within one millisecond
    assert all(re.fullmatch("[0-9a-f]{32}", i) for i in made)
    assert len(set(made)) == len(made)
    assert made == sorted(made)


def test_system_client_ids_are_prefixed_ids() -> None:
    client_id = system_client_id()
    assert client_id.startswith("sys-")
    assert re.fullmatch("[0-9a-f]{32}", client_id.removeprefix("sys-"))
    assert client_id < system_client_id()
