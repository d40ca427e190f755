"""Presence diffs: the shape presence.js expects, and apply_diff(old, diff(old, new)) == new."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from whispr.protocol.presence import PresenceState, apply_diff, diff, normalize


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


def test_no_change_empty_diff() -> None:
    state: PresenceState = {"u": {"metas": [{"phx_ref": "a"}]}}
    assert diff(state, state) == {"joins": {}, "leaves": {}}


def test_changed_meta_same_ref_is_a_join_only() -> None:
    old: PresenceState = {"u": {"metas": [{"phx_ref": "a", "s": "away"}]}}
    new: PresenceState = {"u": {"metas": [{"phx_ref": "a", "s": "online"}]}}
    assert diff(old, new) == {"joins": new, "leaves": {}}
    assert apply_diff(old, diff(old, new)) == new


def test_apply_diff_does_not_mutate() -> None:
    old: PresenceState = {"u": {"metas": [{"phx_ref": "a"}]}}
    d = {
        "joins": {"u": {"metas": [{"phx_ref": "b"}]}},
        "leaves": {"u": {"metas": [{"phx_ref": "a"}]}},
    }
    assert apply_diff(old, d) == {"u": {"metas": [{"phx_ref": "b"}]}}
    assert old == {"u": {"metas": [{"phx_ref": "a"}]}}


def test_leave_of_unknown_key_ignored() -> None:
    assert apply_diff({}, {"joins": {}, "leaves": {"x": {"metas": [{"phx_ref": "a"}]}}}) == {}


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
    assert normalize(apply_diff(old, diff(old, new))) == normalize(new)


@given(presence_states(), presence_states(), presence_states())
def test_diffs_compose(a: PresenceState, b: PresenceState, c: PresenceState) -> None:
    state = apply_diff(apply_diff(a, diff(a, b)), diff(b, c))
    assert normalize(state) == normalize(c)
