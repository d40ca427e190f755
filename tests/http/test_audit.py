"""HTTP refusals that are security events reach the audit log, as the socket's do."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import unique
from tests.gateway.test_audit_events import records_of
from tests.http.conftest import Api, problem
from whispr.audit import AuditKind

pytestmark = pytest.mark.timeout(120)


async def test_refused_tokens_and_rights_are_recorded(api: Api) -> None:
    owner, stranger = unique("owner"), unique("stranger")
    expired = api.running.token(stranger, ttl_s=-60)
    async with api.anonymous() as client:
        response = await client.get(
            "/conversations", headers={"Authorization": f"Bearer {expired}"}
        )
        problem(response, 401, "unauthorized")
    async with api.user(owner) as client:
        created = await client.post(
            "/conversations", json={"kind": "group", "title": "g", "members": []}
        )
        group = created.json()["id"]
    async with api.user(stranger) as client:
        problem(await client.get(f"/conversations/{group}/messages"), 403, "not_member")

    refused = await records_of(api.running, stranger, AuditKind.TOKEN_REFUSED)
    assert [(r.source, r.reason) for r in refused] == [("http", "token expired")]
    denied = await records_of(api.running, stranger, AuditKind.PERMISSION_DENIED)
    assert [r.source for r in denied] == ["http"]
    assert denied[0].details["on"] == f"GET /api/v1/conversations/{group}/messages"
