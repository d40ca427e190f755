"""A node with its HTTP API on a free port, clients for it, and the API's own schema.

``api`` runs twice: embedded (SQLite, in-process broker) and on the real services
(PostgreSQL in a private schema, Redis under a private key prefix). Every response a test
reads through :class:`Api` is checked against the OpenAPI document the node serves (the
operation's documented status and body schema), so the contract tests are also the proof
that the document says what the API does.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator, validate

from tests.gateway.conftest import EACH_STORE, RunningNode, node_on_store
from whispr.http.routes.export import JSON_LINES

SERVICE_TOKENS = {"backend": "backend-token-0123456789"}


def _template_pattern(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)) + "$")


@dataclass
class Schema:
    """The served OpenAPI document, and the check of one response against it."""

    document: dict[str, Any]
    _paths: list[tuple[re.Pattern[str], str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        templates = sorted(self.document["paths"], key=lambda t: t.count("{"))
        self._paths = [(_template_pattern(t), t) for t in templates]

    def template(self, path: str) -> str | None:
        for pattern, template in self._paths:
            if pattern.match(path):
                return template
        return None

    def check(self, response: httpx.Response) -> None:
        """``response`` is documented: its status for its operation, and its body's schema."""
        request = response.request
        path = request.url.path
        template = self.template(path)
        operation = None if template is None else self.document["paths"][template]
        if operation is not None:
            operation = operation.get(request.method.lower())
        if operation is None:  # no such route, or not with this method: a problem, always
            assert response.status_code in (404, 405), f"{request.method} {path} is not documented"
            assert response.headers["content-type"].startswith("application/problem+json")
            return
        documented = operation["responses"]
        status = str(response.status_code)
        assert status in documented, f"{request.method} {path}: {status} is not documented"
        content = documented[status].get("content")
        if not content:
            assert not response.content, f"{request.method} {path}: undocumented body"
            return
        media = response.headers["content-type"].split(";")[0]
        assert media in content, f"{request.method} {path}: {media} not in {list(content)}"
        schema = {**content[media]["schema"], "components": self.document["components"]}
        if media == JSON_LINES:  # an export: each line is one documented body
            for line in response.text.splitlines():
                validate(json.loads(line), schema, cls=Draft202012Validator)
            return
        validate(response.json(), schema, cls=Draft202012Validator)


@dataclass
class Api:
    """A node's HTTP API, and clients for it whose every response is checked."""

    running: RunningNode
    schema: Schema

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.running.node.http.get().port}"

    def _client(self, headers: dict[str, str]) -> httpx.AsyncClient:
        async def check(response: httpx.Response) -> None:
            await response.aread()
            if response.status_code != 304:
                self.schema.check(response)

        return httpx.AsyncClient(
            base_url=f"{self.base}/api/v1",
            headers=headers,
            event_hooks={"response": [check]},
            timeout=30,
        )

    def user(self, user_id: str, device_id: str | None = None) -> httpx.AsyncClient:
        """A client with ``user_id``'s token."""
        token = self.running.token(user_id, device_id)
        return self._client({"Authorization": f"Bearer {token}"})

    def service(self, name: str = "backend") -> httpx.AsyncClient:
        """A backend with its service token."""
        return self._client({"Authorization": f"Bearer {SERVICE_TOKENS[name]}"})

    def anonymous(self) -> httpx.AsyncClient:
        return self._client({})


@pytest.fixture(params=EACH_STORE)
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    env = {"WHISPR_GRPC_TOKENS": ",".join(f"{n}={t}" for n, t in SERVICE_TOKENS.items())}
    async with node_on_store(request, tmp_path, env) as running:
        base = f"http://127.0.0.1:{running.node.http.get().port}"
        async with httpx.AsyncClient() as client:
            document = (await client.get(f"{base}/api/v1/openapi.json")).json()
        yield Api(running, Schema(document))


def problem(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    """The problem document of a refusal, checked for its status and reason."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["reason"] == reason, body
    assert body["type"] == f"urn:whispr:problem:{reason}"
    return body
