"""Opaque page cursors: what a page's ``next`` says, and the ``cursor`` query that reads it.

A cursor is the place after a page's last row (for conversations: its activity time and
id), as base64url of a JSON array. Clients pass it back as is; one that was tampered with
or made up is refused with ``invalid`` naming ``cursor``, never a crash.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec

from actors.errors import Reason, WhisprError

__all__ = ["decode_cursor", "encode_cursor"]

#: Longer cursors than any this API writes are refused before they are decoded.
MAX_CURSOR = 512


def encode_cursor(values: tuple[Any, ...]) -> str:
    """The cursor for a place (a tuple of JSON values)."""
    return base64.urlsafe_b64encode(msgspec.json.encode(values)).decode().rstrip("=")


def decode_cursor(cursor: str, types: tuple[type, ...]) -> tuple[Any, ...]:
    """The place a cursor names, its values of ``types``.

    Raises:
        WhisprError: ``invalid`` (``field``: ``cursor``) for anything this API did not write.
    """
    try:
        if len(cursor) > MAX_CURSOR:
            raise ValueError(cursor)
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = msgspec.json.decode(raw, type=tuple[*types])  # type: ignore[valid-type]
    except (ValueError, binascii.Error, msgspec.DecodeError, UnicodeEncodeError):
        raise WhisprError(Reason.INVALID, "not a cursor this API gave", field="cursor") from None
    return tuple(values)
