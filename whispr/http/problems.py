"""Refusals as HTTP problem details (RFC 9457): one table from reason to status.

Every refusal the API sends is a ``WhisprError(Reason.X)`` from the one catalogue
(``actors/errors.py``), the same value the WebSocket sends as an error reply and gRPC as a
status: :data:`STATUS_BY_REASON` gives its HTTP status, and :func:`problem_response` its
body, ``application/problem+json``::

    {"type": "urn:whispr:problem:not_member", "title": "Forbidden", "status": 403,
     "detail": "not a member of this conversation", "reason": "not_member"}

``reason`` is the catalogue's word (what a client matches on: ``not_member`` and
``forbidden`` are both 403), and the error's details (``field``, ``limit``, ``retry_after``,
``right``) follow as extension members, as they do in a WebSocket error reply. The
framework's own refusals (a body that is not JSON, a route that does not exist, a body over
the size limit) are turned into the reason of their status first, so they read the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from http import HTTPStatus
from types import MappingProxyType
from typing import Any, Final

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ExceptionHandlersMap

from actors.errors import Reason, WhisprError
from whispr.gateway.channels.base import field_of
from whispr.http.auth import USER_STATE
from whispr.http.context import CONTEXT_STATE, HttpContext

__all__ = [
    "PROBLEM_JSON",
    "STATUS_BY_REASON",
    "Problem",
    "internal_error",
    "problem_response",
    "problems",
    "refusal_of",
]

log = structlog.get_logger("whispr.http")

PROBLEM_JSON: Final = "application/problem+json"

#: Every reason's HTTP status (a test checks that none is missing).
STATUS_BY_REASON: Final[Mapping[Reason, HTTPStatus]] = MappingProxyType(
    {
        Reason.INVALID: HTTPStatus.BAD_REQUEST,
        Reason.UNAUTHORIZED: HTTPStatus.UNAUTHORIZED,
        Reason.NOT_MEMBER: HTTPStatus.FORBIDDEN,
        Reason.FORBIDDEN: HTTPStatus.FORBIDDEN,
        Reason.NOT_FOUND: HTTPStatus.NOT_FOUND,
        Reason.CONFLICT: HTTPStatus.CONFLICT,
        Reason.TOO_LARGE: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        Reason.RATE_LIMITED: HTTPStatus.TOO_MANY_REQUESTS,
        Reason.TOO_MANY_CONNECTIONS: HTTPStatus.TOO_MANY_REQUESTS,
        Reason.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
        # End to end (docs/e2e.md), as Signal's servers answer them: the envelopes name a
        # device set other than the members' (409, with ``missing`` and ``extra``), or a
        # device that was registered again since (410, with ``stale``).
        Reason.MISMATCHED_DEVICES: HTTPStatus.CONFLICT,
        Reason.STALE_DEVICES: HTTPStatus.GONE,
    }
)

#: The reason a framework refusal of a status stands for: the first reason with that status.
_REASON_BY_STATUS: Final = {
    status: reason for reason, status in reversed(list(STATUS_BY_REASON.items()))
}


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem: what every refused request's body is (``application/problem+json``).

    ``reason`` is the error catalogue's word; the error's details are extension members
    (those below, and any other a refusal carries).
    """

    type: str
    title: str
    status: int
    detail: str
    reason: str | None = None
    #: The request field at fault (``invalid``, ``too_large``).
    field: str | None = None
    #: The limit exceeded (``too_large``, ``rate_limited``: per minute).
    limit: int | None = None
    #: Seconds before a retry may succeed (``rate_limited``).
    retry_after: float | None = None
    #: The right a ``forbidden`` caller lacks (``actors/permissions.py``).
    right: str | None = None
    #: ``mismatched_devices``: the devices envelopes are missing for, and those not there
    #: (user id -> device ids).
    missing: dict[str, list[str]] | None = None
    extra: dict[str, list[str]] | None = None
    #: ``stale_devices``: the devices registered again since (user id -> device ids).
    stale: dict[str, list[str]] | None = None


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """The problem responses a route documents in the OpenAPI document."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=HTTPStatus(status).phrase,
            media_type=PROBLEM_JSON,
            generate_examples=False,
        )
        for status in statuses
    }


def problem_response(error: WhisprError) -> Response[Any]:
    """The response for a refusal: its status, its problem body, and the headers it implies."""
    status = STATUS_BY_REASON.get(error.reason, HTTPStatus.INTERNAL_SERVER_ERROR)
    payload = error.to_payload()
    body = {
        "type": f"urn:whispr:problem:{error.reason.value}",
        "title": status.phrase,
        "status": status.value,
        "detail": payload.pop("message"),
        **payload,
    }
    headers: dict[str, str] = {}
    if status == HTTPStatus.UNAUTHORIZED:
        headers["WWW-Authenticate"] = "Bearer"
    retry_after = error.details.get("retry_after")
    if isinstance(retry_after, int | float) and not isinstance(retry_after, bool):
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return Response(body, status_code=status.value, media_type=PROBLEM_JSON, headers=headers)


def refusal_of(exc: HTTPException) -> WhisprError:
    """A framework refusal as the catalogue's error of its status (``invalid`` for a 400).

    A body that failed to decode names the field as a WebSocket payload's refusal does (from
    msgspec's message, :func:`~whispr.gateway.channels.base.field_of`); a query or path
    parameter names itself.
    """
    reason = _REASON_BY_STATUS.get(HTTPStatus(exc.status_code))
    if reason is None:
        # No reason of the catalogue says it (405, 406...): the status speaks for itself.
        reason = Reason.INVALID
    message = exc.detail or HTTPStatus(exc.status_code).phrase
    details: dict[str, Any] = {}
    extra = exc.extra if isinstance(exc, ValidationException) else None
    first = extra[0] if isinstance(extra, list) and extra else None
    if isinstance(first, dict):
        said = first.get("message")
        if isinstance(said, str):
            message = said
        key = first.get("key")
        if key == "data":  # the body itself: the message names the field, if any
            name = field_of(message)
            if name is not None:
                details["field"] = name
        elif isinstance(key, str):  # a body field's path (its outermost field), or a parameter
            details["field"] = key.split(".", 1)[0]
    return WhisprError(reason, message, **details)


def whispr_error_handler(request: Request[Any, Any, Any], exc: WhisprError) -> Response[Any]:
    """The problem for a refusal, recorded in the audit log first when it is a security event
    (a refused token, right or rate: the same kinds the WebSocket records)."""
    ctx = request.app.state.get(CONTEXT_STATE)
    if isinstance(ctx, HttpContext):
        client = request.client
        ctx.audit.refused(
            exc,
            source="http",
            user_id=request.state.get(USER_STATE),
            peer=None if client is None else client.host,
            on=f"{request.method} {request.url.path}",
        )
    return problem_response(exc)


def http_exception_handler(_request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    response = problem_response(refusal_of(exc))
    if response.status_code != exc.status_code:  # 405, 406...: kept, with the framework's word
        response.status_code = exc.status_code
        response.content["status"] = exc.status_code
        response.content["title"] = HTTPStatus(exc.status_code).phrase
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A bug: logged with its traceback, answered 500 without a word of its text."""
    log.error("http handler failed", path=request.url.path, exc_info=exc)
    body = {
        "type": "about:blank",
        "title": HTTPStatus.INTERNAL_SERVER_ERROR.phrase,
        "status": HTTPStatus.INTERNAL_SERVER_ERROR.value,
        "detail": "internal error",
    }
    return Response(body, status_code=500, media_type=PROBLEM_JSON)


#: The handlers the app installs: every refusal is a problem.
EXCEPTION_HANDLERS: Final[ExceptionHandlersMap] = {
    WhisprError: whispr_error_handler,
    HTTPException: http_exception_handler,
    Exception: internal_error,
}
