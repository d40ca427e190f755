"""Phoenix Presence state and diffs as pure functions, exactly as ``presence.js`` reads them.

A presence state maps a key (here a user id) to ``{"metas": [meta, ...]}``: one meta per
device (connection), each carrying a ``phx_ref`` unique among the key's metas. After a join
the server pushes the whole state (event ``presence_state``), then diffs (event
``presence_diff``, payload ``{"joins": state, "leaves": state}``, each a partial state).

The client applies them with ``Presence.syncState`` / ``Presence.syncDiff`` (phoenix.js
``presence.js``), whose rules these functions follow:

- metas are matched by ``phx_ref`` only. Phoenix's ``Presence.update`` therefore gives the
  updated meta a new ``phx_ref`` and keeps the old one as ``phx_ref_prev``; the diff is a leave
  of the old meta and a join of the new one (:func:`update` does exactly that). A meta that
  changed but kept its ``phx_ref`` is diffed as a join only, which ``syncDiff`` uses to replace
  it;
- ``syncDiff`` applies joins first (for a key already present, the kept current metas first,
  then the joined ones; the joined presence's other fields replace the current ones), then
  leaves; a key left with no metas is deleted, and a leave of an unknown key is ignored.

So meta order is not significant, and a key with an empty ``metas`` list is the same as an
absent key: :func:`normalize` gives the canonical form to compare states. Fields of a presence
other than ``metas`` (what Phoenix's ``fetch/2`` adds) travel with joins and leaves; a change
to them alone is not a diff (as in Phoenix).

Nothing here mutates its arguments; results share no mutable structure with them.
"""

from __future__ import annotations

import copy
import secrets
from typing import Any, Final, TypeAlias

__all__ = [
    "PRESENCE_DIFF",
    "PRESENCE_STATE",
    "Diff",
    "Meta",
    "PresenceState",
    "apply_diff",
    "diff",
    "make_ref",
    "normalize",
    "state_payload",
    "track",
    "untrack",
    "update",
]

#: Event names, as phoenix.js ``Presence`` listens for them by default.
PRESENCE_STATE: Final = "presence_state"
PRESENCE_DIFF: Final = "presence_diff"

Meta: TypeAlias = dict[str, Any]
#: ``{key: {"metas": [Meta, ...], ...}}``
PresenceState: TypeAlias = dict[str, dict[str, Any]]
#: ``{"joins": PresenceState, "leaves": PresenceState}``
Diff: TypeAlias = dict[str, PresenceState]


def make_ref() -> str:
    """A fresh ``phx_ref``: random, URL-safe, unique enough to never collide within a key."""
    return secrets.token_urlsafe(9)


def _metas(presence: dict[str, Any] | None) -> list[Meta]:
    if presence is None:
        return []
    metas = presence.get("metas")
    return metas if isinstance(metas, list) else []


def _ref(meta: Meta) -> Any:
    return meta.get("phx_ref")


def _with_metas(presence: dict[str, Any], metas: list[Meta]) -> dict[str, Any]:
    """A deep copy of ``presence`` whose metas are (copies of) ``metas``."""
    fields = {k: copy.deepcopy(v) for k, v in presence.items() if k != "metas"}
    fields["metas"] = copy.deepcopy(metas)
    return fields


def diff(old: PresenceState, new: PresenceState) -> Diff:
    """The ``presence_diff`` payload that turns ``old`` into ``new`` on the client.

    Like ``syncState``'s own computation, plus one thing it cannot see from a full state: a
    meta whose ``phx_ref`` is unchanged but whose content changed is sent as a join.
    """
    joins: PresenceState = {}
    leaves: PresenceState = {}
    for key, presence in old.items():
        if _metas(presence) and not _metas(new.get(key)):
            leaves[key] = _with_metas(presence, _metas(presence))
    for key, presence in new.items():
        new_metas = _metas(presence)
        if not new_metas:
            continue
        old_by_ref = {_ref(m): m for m in _metas(old.get(key))}
        if not old_by_ref:
            joins[key] = _with_metas(presence, new_metas)
            continue
        new_refs = {_ref(m) for m in new_metas}
        joined = [m for m in new_metas if old_by_ref.get(_ref(m)) != m]
        left = [m for ref, m in old_by_ref.items() if ref not in new_refs]
        if joined:
            joins[key] = _with_metas(presence, joined)
        if left:
            leaves[key] = _with_metas(old[key], left)
    return {"joins": joins, "leaves": leaves}


def apply_diff(state: PresenceState, diff: Diff) -> PresenceState:
    """A new state: ``state`` with ``diff`` applied, as ``Presence.syncDiff`` does."""
    result = copy.deepcopy(state)
    for key, presence in diff.get("joins", {}).items():
        joined = _metas(presence)
        joined_refs = {_ref(m) for m in joined}
        kept = [m for m in _metas(result.get(key)) if _ref(m) not in joined_refs]
        entry = _with_metas(presence, joined)
        entry["metas"][:0] = kept
        result[key] = entry
    for key, presence in diff.get("leaves", {}).items():
        current = result.get(key)
        if current is None:
            continue
        gone = {_ref(m) for m in _metas(presence)}
        remaining = [m for m in _metas(current) if _ref(m) not in gone]
        if remaining:
            current["metas"] = remaining
        else:
            del result[key]
    return result


def normalize(state: PresenceState) -> PresenceState:
    """``state`` without keys that have no metas and with metas sorted by ``phx_ref``: two
    states are the same presence exactly when their normal forms are equal."""
    return {
        key: _with_metas(presence, sorted(_metas(presence), key=lambda m: str(_ref(m))))
        for key, presence in state.items()
        if _metas(presence)
    }


def state_payload(state: PresenceState) -> PresenceState:
    """The ``presence_state`` payload for ``state``: a copy without empty keys."""
    return {
        key: _with_metas(presence, _metas(presence))
        for key, presence in state.items()
        if _metas(presence)
    }


def track(
    state: PresenceState, key: str, meta: Meta, ref: str | None = None
) -> tuple[PresenceState, Diff]:
    """Add one meta (one device) under ``key``; the new state and the diff to broadcast.

    The meta gets ``phx_ref`` = ``ref`` (a fresh one by default).
    """
    tracked = {**copy.deepcopy(meta), "phx_ref": ref if ref is not None else make_ref()}
    tracked.pop("phx_ref_prev", None)
    new = copy.deepcopy(state)
    entry = new.setdefault(key, {"metas": []})
    entry["metas"] = [*_metas(entry), tracked]
    return new, diff(state, new)


def untrack(state: PresenceState, key: str, ref: str) -> tuple[PresenceState, Diff]:
    """Remove the meta ``ref`` of ``key``; the new state and the diff (empty if unknown)."""
    new = copy.deepcopy(state)
    entry = new.get(key)
    if entry is not None:
        entry["metas"] = [m for m in _metas(entry) if _ref(m) != ref]
        if not entry["metas"]:
            del new[key]
    return new, diff(state, new)


def update(
    state: PresenceState, key: str, ref: str, changes: Meta, new_ref: str | None = None
) -> tuple[PresenceState, Diff]:
    """Change the meta ``ref`` of ``key`` as Phoenix's ``Presence.update`` does.

    The meta becomes ``{**old, **changes}`` with a new ``phx_ref`` and ``phx_ref_prev`` =
    ``ref``; the diff is a leave of the old meta and a join of the new one. Unknown ``ref``:
    the state unchanged and an empty diff.
    """
    new = copy.deepcopy(state)
    entry = new.get(key)
    metas = _metas(entry)
    found = [m for m in metas if _ref(m) == ref]
    if entry is not None and found:
        updated = {
            **found[0],
            **copy.deepcopy(changes),
            "phx_ref": new_ref if new_ref is not None else make_ref(),
            "phx_ref_prev": ref,
        }
        # Moved last, where syncDiff puts a joined meta: our state and the client's agree.
        entry["metas"] = [m for m in metas if _ref(m) != ref] + [updated]
    return new, diff(state, new)
