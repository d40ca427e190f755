"""The SQL of token revocations and presence settings, written once for both stores.

They differ only in placeholders (``$n`` or ``?``), which each store substitutes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from whispr.revocations import Revocation

__all__ = ["CONTACTS", "INSERT_REVOCATION", "REVOCATIONS_SINCE", "params", "revocation"]

_COLUMNS: Final = (
    "id",
    "kind",
    "user_id",
    "device_id",
    "jti",
    "issued_before",
    "at",
    "expires_at",
    "reason",
)

#: Keep one revocation (values: :func:`params`); an id kept already is left as it is.
INSERT_REVOCATION: Final = (
    f"INSERT INTO token_revocations ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(_COLUMNS) + 1))}) "
    "ON CONFLICT (id) DO NOTHING"
)
#: The revocations made at or after $1 that have not expired at $2, oldest first.
REVOCATIONS_SINCE: Final = (
    f"SELECT {', '.join(_COLUMNS)} FROM token_revocations "
    "WHERE at >= $1 AND expires_at > $2 ORDER BY at, id"
)
#: Up to $2 users sharing a conversation with $1, by the ``members_by_user`` index.
CONTACTS: Final = (
    "SELECT DISTINCT o.user_id FROM members m "
    "JOIN members o ON o.conversation_id = m.conversation_id "
    "WHERE m.user_id = $1 AND o.user_id <> $1 LIMIT $2"
)


def params(r: Revocation) -> tuple[Any, ...]:
    """``r`` as the values of :data:`INSERT_REVOCATION`."""
    return (
        r.id,
        r.kind,
        r.user_id,
        r.device_id,
        r.jti,
        r.issued_before,
        r.at,
        r.expires_at,
        r.reason,
    )


def revocation(row: Mapping[str, Any]) -> Revocation:
    """A row of :data:`REVOCATIONS_SINCE`."""
    return Revocation(
        id=row["id"],
        kind=row["kind"],
        user_id=row["user_id"],
        device_id=row["device_id"],
        jti=row["jti"],
        issued_before=float(row["issued_before"]),
        at=float(row["at"]),
        expires_at=float(row["expires_at"]),
        reason=row["reason"],
    )
