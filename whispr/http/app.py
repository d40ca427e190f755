"""The HTTP API as one Litestar application: its routers, auth, refusals and OpenAPI.

Litestar decodes request bodies into msgspec structs and encodes responses from them
natively, and writes the OpenAPI 3.1 document from the same structs (the domain's own,
``actors/model.py``, and each route module's request and page structs), so the document
cannot drift from what the handlers take and give.

- ``/api/v1/...``: the client API, each route with the user's bearer JWT (:mod:`.auth`);
- ``/api/v1/server/...``: the server API for backends, with a service token;
- ``/api/v1/openapi.json``: the document; ``/api/v1/docs``: a page generated from it that
  needs nothing from the internet (:mod:`.docs_page`).

Every refusal is a problem document (:mod:`.problems`).
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Litestar, Request, Router, get
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import OpenAPIMediaType
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from whispr.http import auth
from whispr.http.bodies import strict_body
from whispr.http.context import CONTEXT_STATE, HttpContext
from whispr.http.docs_page import DocsPage
from whispr.http.metrics import metrics_middleware
from whispr.http.problems import EXCEPTION_HANDLERS
from whispr.http.routes import (
    conversations,
    devices,
    export,
    longpoll,
    members,
    messages,
    receipts,
    scheduled,
    search,
    server,
    settings,
    web,
)

__all__ = ["API_PREFIX", "CLIENT_ROUTERS", "SERVER_ROUTERS", "build_app"]

API_PREFIX: Final = "/api/v1"
#: The documentation page (its document is also at ``/api/v1/docs/openapi.json``).
DOCS_PATH: Final = f"{API_PREFIX}/docs"
#: The client API's resources, one module each.
CLIENT_ROUTERS: Final = (
    conversations.router,
    members.router,
    messages.router,
    receipts.router,
    settings.router,
    search.router,
    export.router,
    scheduled.router,
    devices.router,
)
#: The server API's resources.
SERVER_ROUTERS: Final = (server.router,)

_DESCRIPTION = (
    "Whispr's HTTP API. Clients authenticate with the JWT they open the WebSocket with "
    "(`Authorization: Bearer <jwt>`); backends call `/api/v1/server` with a service token "
    "(`WHISPR_GRPC_TOKENS`). Refusals are RFC 9457 problem documents whose `reason` is the "
    "error catalogue's word, as on the WebSocket and gRPC."
)


@get(
    f"{API_PREFIX}/openapi.json",
    media_type=OpenAPIMediaType.OPENAPI_JSON,
    include_in_schema=False,
    sync_to_thread=False,
)
def openapi_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API, at its documented place."""
    return request.app.openapi_schema.to_schema()


async def _user_request(request: Request[Any, Any, Any]) -> None:
    """Before a client API handler: who calls (a refusal is 401 whatever the body), then
    the body as the socket would decode it."""
    await auth.authenticate_user(request)
    await strict_body(request)


async def _service_request(request: Request[Any, Any, Any]) -> None:
    """Before a server API handler: which backend calls, then the body."""
    auth.authenticate_service(request)
    await strict_body(request)


def cors(origins: tuple[str, ...]) -> CORSConfig:
    """Cross-origin requests from ``origins`` (``WHISPR_ALLOWED_ORIGINS``, as the WebSocket
    allows them), or from any origin when none is configured: the API authenticates with a
    bearer token, never a cookie, so a page of another origin cannot act for a user without
    holding their token."""
    return CORSConfig(
        allow_origins=list(origins) or ["*"],
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "Idempotency-Key",
            "If-None-Match",
            # phoenix.js's long-poll transport (/socket/longpoll): its authToken, its session.
            "X-Phoenix-AuthToken",
            "X-Phoenix-LongPoll-Token",
        ],
        expose_headers=["ETag", "Retry-After", "WWW-Authenticate"],
    )


def build_app(ctx: HttpContext) -> Litestar:
    """The application serving ``ctx``'s node."""

    def provide_ctx() -> HttpContext:
        return ctx

    client = Router(
        API_PREFIX,
        route_handlers=list(CLIENT_ROUTERS),
        dependencies={"identity": Provide(auth.identity, sync_to_thread=False)},
        before_request=_user_request,
        security=[{"bearer": []}],
    )
    server = Router(
        f"{API_PREFIX}/server",
        route_handlers=list(SERVER_ROUTERS),
        dependencies={"caller": Provide(auth.caller, sync_to_thread=False)},
        before_request=_service_request,
        security=[{"service": []}],
        tags=["server"],
    )
    return Litestar(
        route_handlers=[client, server, openapi_json, longpoll.router, web.router],
        dependencies={"ctx": Provide(provide_ctx, use_cache=True, sync_to_thread=False)},
        exception_handlers=dict(EXCEPTION_HANDLERS),
        state=State({CONTEXT_STATE: ctx}),
        middleware=[metrics_middleware],
        cors_config=cors(ctx.settings.allowed_origins),
        request_max_body_size=ctx.settings.http_max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Whispr HTTP API",
            version="1",
            description=_DESCRIPTION,
            # Under a path of their own: Litestar answers any other path under the documents'
            # one with an HTML 404, which must not shadow the API's problem documents.
            path=DOCS_PATH,
            render_plugins=[DocsPage(path="/"), JsonRenderPlugin()],
            use_handler_docstrings=True,
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        bearer_format="JWT",
                        description="The user's token, as the WebSocket takes it.",
                    ),
                    "service": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="A backend's service token (WHISPR_GRPC_TOKENS).",
                    ),
                }
            ),
        ),
        debug=False,
        logging_config=None,
    )
