"""Refusals as gRPC trailing metadata: the device lists of an end-to-end send survive any text."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from actors.errors import Reason, WhisprError
from whispr.grpc.status import trailing_metadata

#: Any text a store may hold as an id, lone surrogates and NUL included.
_ids = st.text(min_size=1, max_size=20)
_devices = st.dictionaries(_ids, st.lists(_ids, max_size=3), max_size=4)


@given(missing=_devices, extra=_devices)
def test_device_lists_are_ascii_json_that_reads_back(
    missing: dict[str, list[str]], extra: dict[str, list[str]]
) -> None:
    error = WhisprError(Reason.MISMATCHED_DEVICES, "m", missing=missing, extra=extra)
    pairs = dict(trailing_metadata(error))
    assert pairs["whispr-reason"] == "mismatched_devices"
    for key, devices in (("whispr-missing", missing), ("whispr-extra", extra)):
        assert pairs[key].isascii()  # gRPC metadata values must be
        assert json.loads(pairs[key]) == devices
    assert "whispr-stale" not in pairs


def test_other_refusals_carry_no_device_lists() -> None:
    pairs = dict(trailing_metadata(WhisprError(Reason.INVALID, "bad", field="envelopes")))
    assert pairs == {"whispr-reason": "invalid", "whispr-field": "envelopes"}
