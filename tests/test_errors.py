"""The catalogue of error reasons: payloads, subclasses, and errors crossing processes."""

from __future__ import annotations

import pickle

import msgspec
import pytest

from actors import errors
from actors.errors import Forbidden, Invalid, NotFound, Reason, Unavailable, WhisprError


def test_every_reason_has_its_class() -> None:
    for reason in Reason:
        error = errors._BY_REASON[reason]()
        assert error.reason is reason
        assert isinstance(error, WhisprError)
        assert error.message  # a default sentence for people


def test_the_payload_is_reason_message_and_details() -> None:
    error = Invalid("content is too long", field="content", limit=10_000)
    assert error.to_payload() == {
        "reason": "invalid",
        "message": "content is too long",
        "field": "content",
        "limit": 10_000,
    }
    assert str(error) == "content is too long"


@pytest.mark.parametrize(
    "error",
    [NotFound("no message 7", seq=7), WhisprError(Reason.FORBIDDEN, "admins only", role="member")],
)
def test_an_error_survives_pickling_and_the_wire(error: WhisprError) -> None:
    for copy in (pickle.loads(pickle.dumps(error)), WhisprError.from_payload(error.to_payload())):
        assert copy.reason is error.reason
        assert copy.to_payload() == error.to_payload()
        assert isinstance(copy, errors._BY_REASON[error.reason])
    assert isinstance(pickle.loads(pickle.dumps(error)), Forbidden | NotFound)


def test_an_unknown_reason_reads_as_unavailable() -> None:
    error = WhisprError.from_payload({"reason": "quota_exceeded", "message": "later"})
    assert isinstance(error, Unavailable)
    assert error.message == "later"


def test_a_refusal_quoting_a_lone_surrogate_can_still_be_sent() -> None:
    error = WhisprError(Reason.NOT_FOUND, "b\udfff is not a member", field="user_id", who="b\udfff")
    payload = error.to_payload()
    assert payload["message"] == "b\\udfff is not a member"
    assert payload["who"] == "b\\udfff"
    msgspec.json.encode(payload)  # does not raise
