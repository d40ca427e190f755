"""Phoenix Presence state and diffs as pure functions, as ``presence.js`` expects them.

A presence state maps a key (here a user id) to ``{"metas": [meta, ...]}``, one meta per
device/connection, each meta carrying a unique ``phx_ref``. The server sends the whole state
once after a join (event ``presence_state``) and then diffs (event ``presence_diff``,
``{"joins": {...}, "leaves": {...}}``, each side a partial state).

Semantics follow ``Presence.syncState`` / ``Presence.syncDiff`` of the JS client:

- metas are identified by ``phx_ref`` only; a meta whose content changes must get a new
  ``phx_ref`` (Phoenix's ``update`` does so). A meta that kept its ``phx_ref`` but changed
  anyway is sent as a join only, which replaces it in ``apply_diff``;
- ``apply_diff`` applies joins first (the remaining old metas of a key come first, then the
  joined ones), then leaves; a key left with no metas disappears. Meta order is therefore not
  significant, and a key with an empty ``metas`` list is treated as absent.

Nothing here mutates its arguments.
"""

from __future__ import annotations

import copy
from typing import Any, Final

__all__ = [
    "PRESENCE_DIFF",
    "PRESENCE_STATE",
    "Diff",
    "Meta",
    "PresenceState",
    "apply_diff",
    "diff",
    "normalize",
]

PRESENCE_STATE: Final = "presence_state"
PRESENCE_DIFF: Final = "presence_diff"

Meta = dict[str, Any]
PresenceState = dict[str, dict[str, Any]]  # key -> {"metas": [Meta, ...], ...}
Diff = dict[str, PresenceState]  # {"joins": PresenceState, "leaves": PresenceState}


def _metas(presence: dict[str, Any] | None) -> list[Meta]:
    if presence is None:
        return []
    metas = presence.get("metas", [])
    return list(metas) if isinstance(metas, list) else []


def diff(old: PresenceState, new: PresenceState) -> Diff:
    """The ``presence_diff`` payload that turns ``old`` into ``new`` (as presence.js's
    ``syncState`` computes it)."""
    joins: PresenceState = {}
    leaves: PresenceState = {}
    for key, presence in old.items():
        if not _metas(new.get(key)) and _metas(presence):
            leaves[key] = copy.deepcopy(presence)
    for key, presence in new.items():
        new_metas = _metas(presence)
        if not new_metas:
            continue
        old_by_ref = {m.get("phx_ref"): m for m in _metas(old.get(key))}
        if not old_by_ref:
            joins[key] = copy.deepcopy(presence)
            continue
        new_refs = {m.get("phx_ref") for m in new_metas}
        joined = [m for m in new_metas if old_by_ref.get(m.get("phx_ref")) != m]
        left = [m for ref, m in old_by_ref.items() if ref not in new_refs]
        if joined:
            joins[key] = {**copy.deepcopy(presence), "metas": copy.deepcopy(joined)}
        if left:
            leaves[key] = {**copy.deepcopy(old[key]), "metas": copy.deepcopy(left)}
    return {"joins": joins, "leaves": leaves}


def apply_diff(state: PresenceState, diff: Diff) -> PresenceState:
    """A new state: ``state`` with ``diff`` applied, as presence.js's ``syncDiff``."""
    result = copy.deepcopy(state)
    for key, presence in diff.get("joins", {}).items():
        joined = copy.deepcopy(_metas(presence))
        joined_refs = {m.get("phx_ref") for m in joined}
        current = result.get(key)
        kept = [m for m in _metas(current) if m.get("phx_ref") not in joined_refs]
        result[key] = {**copy.deepcopy(presence), "metas": kept + joined}
    for key, presence in diff.get("leaves", {}).items():
        current = result.get(key)
        if current is None:
            continue
        gone = {m.get("phx_ref") for m in _metas(presence)}
        remaining = [m for m in _metas(current) if m.get("phx_ref") not in gone]
        if remaining:
            current["metas"] = remaining
        else:
            del result[key]
    return result


def normalize(state: PresenceState) -> PresenceState:
    """``state`` with keys without metas dropped and metas sorted by ``phx_ref``: two states
    are the same presence exactly when their normal forms are equal."""
    return {
        key: {**presence, "metas": sorted(_metas(presence), key=lambda m: str(m.get("phx_ref")))}
        for key, presence in state.items()
        if _metas(presence)
    }
