"""Presence diffs: the shapes presence.js expects, checked against its syncState/syncDiff."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.protocol import phoenix_js
from whispr.protocol.presence import (
    Diff,
    PresenceState,
    apply_diff,
    diff,
    normalize,
    state_payload,
    track,
    untrack,
    update,
)


def test_diff_join_leave_and_device_change() -> None:
    old: PresenceState = {
        "u1": {"metas": [{"phx_ref": "a", "device": "web"}]},
        "u2": {"metas": [{"phx_ref": "b"}, {"phx_ref": "c"}]},
    }
    new: PresenceState = {
        "u2": {"metas": [{"phx_ref": "b"}, {"phx_ref": "d"}]},
        "u3": {"metas": [{"phx_ref": "e"}]},
    }
    assert diff(old, new) == {
        "joins": {"u2": {"metas": [{"phx_ref": "d"}]}, "u3": {"metas": [{"phx_ref": "e"}]}},
        "leaves": {
            "u1": {"metas": [{"phx_ref": "a", "device": "web"}]},
            "u2": {"metas": [{"phx_ref": "c"}]},
        },
    }
    assert apply_diff(old, diff(old, new)) == new


def test_no_change_is_an_empty_diff() -> None:
    state: PresenceState = {"u": {"metas": [{"phx_ref": "a"}]}}
    assert diff(state, state) == {"joins": {}, "leaves": {}}


def test_changed_meta_with_same_ref_is_a_join_that_replaces_it() -> None:
    old: PresenceState = {"u": {"metas": [{"phx_ref": "a", "s": "away"}, {"phx_ref": "b"}]}}
    new: PresenceState = {"u": {"metas": [{"phx_ref": "a", "s": "online"}, {"phx_ref": "b"}]}}
    d = diff(old, new)
    assert d == {"joins": {"u": {"metas": [{"phx_ref": "a", "s": "online"}]}}, "leaves": {}}
    assert normalize(apply_diff(old, d)) == normalize(new)
    assert normalize(phoenix_js.sync_diff(copy.deepcopy(old), d)) == normalize(new)


def test_apply_diff_does_not_mutate_and_shares_nothing() -> None:
    old: PresenceState = {"u": {"metas": [{"phx_ref": "a"}]}}
    d: Diff = {
        "joins": {"u": {"metas": [{"phx_ref": "b", "tags": ["x"]}]}},
        "leaves": {"u": {"metas": [{"phx_ref": "a"}]}},
    }
    result = apply_diff(old, d)
    assert result == {"u": {"metas": [{"phx_ref": "b", "tags": ["x"]}]}}
    assert old == {"u": {"metas": [{"phx_ref": "a"}]}}
    result["u"]["metas"][0]["tags"].append("y")
    assert d["joins"]["u"]["metas"][0]["tags"] == ["x"]


def test_leave_of_unknown_key_is_ignored() -> None:
    assert apply_diff({}, {"joins": {}, "leaves": {"x": {"metas": [{"phx_ref": "a"}]}}}) == {}


def test_track_untrack_update() -> None:
    state, d = track({}, "u1", {"device": "web", "online_at": 1}, ref="r1")
    assert state == {"u1": {"metas": [{"device": "web", "online_at": 1, "phx_ref": "r1"}]}}
    assert d == {"joins": state, "leaves": {}}

    state2, d = track(state, "u1", {"device": "ios"}, ref="r2")
    assert d == {"joins": {"u1": {"metas": [{"device": "ios", "phx_ref": "r2"}]}}, "leaves": {}}

    state3, d = update(state2, "u1", "r1", {"status": "away"}, new_ref="r3")
    updated = {"device": "web", "online_at": 1, "status": "away", "phx_ref": "r3"}
    assert d == {
        "joins": {"u1": {"metas": [{**updated, "phx_ref_prev": "r1"}]}},
        "leaves": {"u1": {"metas": [{"device": "web", "online_at": 1, "phx_ref": "r1"}]}},
    }
    assert phoenix_js.sync_diff(copy.deepcopy(state2), d) == state3 == apply_diff(state2, d)

    state4, d = untrack(state3, "u1", "r2")
    assert d == {"joins": {}, "leaves": {"u1": {"metas": [{"device": "ios", "phx_ref": "r2"}]}}}
    state5, d = untrack(state4, "u1", "r3")
    assert state5 == {}
    assert list(d["leaves"]) == ["u1"]
    assert untrack(state5, "u1", "nope") == ({}, {"joins": {}, "leaves": {}})
    assert update(state5, "u1", "nope", {}) == ({}, {"joins": {}, "leaves": {}})


def test_track_makes_unique_refs() -> None:
    state, _ = track({}, "u", {})
    state, _ = track(state, "u", {})
    refs = [m["phx_ref"] for m in state["u"]["metas"]]
    assert len(set(refs)) == 2
    assert all(isinstance(r, str) and r for r in refs)


def test_state_payload_drops_empty_keys() -> None:
    state: PresenceState = {"u1": {"metas": []}, "u2": {"metas": [{"phx_ref": "a"}]}}
    assert state_payload(state) == {"u2": {"metas": [{"phx_ref": "a"}]}}


def test_extra_presence_fields_travel_with_joins() -> None:
    old: PresenceState = {}
    new: PresenceState = {"u": {"metas": [{"phx_ref": "a"}], "user": {"name": "Ann"}}}
    assert diff(old, new)["joins"] == new
    assert apply_diff(old, diff(old, new)) == new


@st.composite
def presence_states(draw: st.DrawFn) -> PresenceState:
    keys = draw(st.lists(st.sampled_from(["u1", "u2", "u3", "u4"]), unique=True))
    state: PresenceState = {}
    for key in keys:
        refs = draw(st.lists(st.sampled_from("abcdef"), min_size=1, max_size=4, unique=True))
        metas: list[dict[str, Any]] = [
            {"phx_ref": ref, "status": draw(st.sampled_from(["online", "away"]))} for ref in refs
        ]
        state[key] = {"metas": metas}
    return state


@given(presence_states(), presence_states())
def test_apply_diff_of_diff_is_new(old: PresenceState, new: PresenceState) -> None:
    # Equal up to meta order, which syncDiff does not keep either.
    assert normalize(apply_diff(old, diff(old, new))) == normalize(new)


@given(presence_states(), presence_states())
def test_apply_diff_is_phoenix_js_sync_diff(old: PresenceState, new: PresenceState) -> None:
    d = diff(old, new)
    # Exactly, order included: what the client will hold is what we compute.
    assert phoenix_js.sync_diff(copy.deepcopy(old), d) == apply_diff(old, d)


@given(presence_states(), presence_states())
def test_diff_agrees_with_sync_state_on_refs(old: PresenceState, new: PresenceState) -> None:
    # syncState matches metas by phx_ref only; so do we when no meta changed under its ref.
    via_state = phoenix_js.sync_state(old, new)
    assert _refs(via_state) == _refs(apply_diff(old, diff(old, new))) == _refs(new)


@given(presence_states(), presence_states(), presence_states())
def test_diffs_compose(a: PresenceState, b: PresenceState, c: PresenceState) -> None:
    state = apply_diff(apply_diff(a, diff(a, b)), diff(b, c))
    assert normalize(state) == normalize(c)


def _refs(state: PresenceState) -> dict[str, set[str]]:
    return {key: {m["phx_ref"] for m in p["metas"]} for key, p in state.items()}
