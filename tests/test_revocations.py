"""What each kind of revocation refuses (the connect check's rule, whispr/revocations.py)."""

from __future__ import annotations

from whispr.auth import Identity
from whispr.revocations import Revocation, RevocationList, RevocationStore


class _Store(RevocationStore):
    def __init__(self) -> None:
        self.kept: list[Revocation] = []

    async def add_revocation(self, revocation: Revocation) -> None:
        self.kept.append(revocation)

    async def revocations_since(self, at: float, now: float) -> list[Revocation]:
        return [r for r in self.kept if r.at >= at and r.expires_at > now]


def _revocation(kind: str, **fields: object) -> Revocation:
    at = 1000.5
    return Revocation(
        id=f"r-{kind}",
        kind=kind,
        issued_before=at,
        at=at,
        expires_at=9e9,
        reason=kind,
        **fields,  # type: ignore[arg-type]
    )


def _identity(
    user: str, device: str = "d", iat: float | None = 999.0, jti: str | None = None
) -> Identity:
    return Identity(user, device, 9e9, issued_at=iat, jti=jti)


async def test_each_kind_refuses_what_it_names_and_nothing_else() -> None:
    store = _Store()
    revocations = RevocationList(store)
    store.kept += [
        _revocation("user", user_id="ada"),
        _revocation("device", user_id="bob", device_id="tv"),
        _revocation("jti", jti="t-1"),
    ]
    assert len(await revocations.refresh(now=2000.0)) == 3
    assert revocations.refused(_identity("ada")) == "user"
    assert revocations.refused(_identity("ada", iat=1000.0)) == "user"  # the same second
    assert revocations.refused(_identity("ada", iat=None)) == "user"  # no iat: refused
    assert revocations.refused(_identity("ada", iat=1001.0)) is None  # a later second
    assert revocations.refused(_identity("bob", "tv")) == "device"
    assert revocations.refused(_identity("bob", "phone")) is None
    assert revocations.refused(_identity("carol", iat=5000.0, jti="t-1")) == "jti"
    assert revocations.refused(_identity("carol", jti="t-2")) is None
    # Read again: nothing is new to the node.
    assert await revocations.refresh(now=2001.0) == []
