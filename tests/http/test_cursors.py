"""Page cursors: what a page gives back reads as the same place; anything else is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.errors import Reason, WhisprError
from whispr.http.cursors import MAX_CURSOR, decode_cursor, encode_cursor

texts = st.text(st.characters(codec="utf-8"), max_size=64)


@given(st.floats(allow_nan=False, allow_infinity=False), texts)
def test_a_conversation_place_reads_back(at: float, conversation_id: str) -> None:
    cursor = encode_cursor((at, conversation_id))
    assert cursor.isascii()
    assert len(cursor) <= MAX_CURSOR
    assert decode_cursor(cursor, (float, str)) == (at, conversation_id)


@given(st.sampled_from(["before", "after"]), st.integers(0, 2**63 - 1))
def test_a_history_place_reads_back(direction: str, seq: int) -> None:
    assert decode_cursor(encode_cursor((direction, seq)), (str, int)) == (direction, seq)


@given(st.text(max_size=600))
def test_any_other_text_is_a_refusal_naming_the_cursor(text: str) -> None:
    outcome: tuple[object, ...] | WhisprError
    try:
        outcome = decode_cursor(text, (str, int))
    except WhisprError as refused:
        outcome = refused
    if isinstance(outcome, WhisprError):
        assert outcome.reason is Reason.INVALID
        assert outcome.details == {"field": "cursor"}
    else:  # text that happens to be a cursor: a place of the right types
        assert isinstance(outcome[0], str)
        assert isinstance(outcome[1], int)


@pytest.mark.parametrize("cursor", ["", "=", "\x00", "\ud800", "W10", "WyJhIiwxLDJd", "x" * 513])
def test_odd_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(WhisprError) as caught:
        decode_cursor(cursor, (str, int))
    assert caught.value.details == {"field": "cursor"}
