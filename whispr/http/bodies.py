"""Request bodies decoded as the WebSocket decodes payloads: strictly, one decoder for both.

Litestar converts a handler's ``data`` leniently (a number or boolean given as a string,
``{"seq": "3"}``, is taken as one), where the socket's
:func:`~whispr.gateway.channels.base.decode_payload` refuses it. So that a body the socket
would refuse as a payload is refused here too, with the same words and ``field``, every
route that takes a body has it checked by that decoder first (:func:`strict_body`, the
routers' ``before_request``), against the struct its handler declares. Litestar keeps the
body it read, so the handler's own decoding reads no more.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request

from actors.errors import Reason, WhisprError
from whispr.gateway.channels.base import decode_payload

__all__ = ["strict_body"]


async def strict_body(request: Request[Any, Any, Any]) -> None:
    """Refuse (``invalid``) a body the route's struct does not take as the socket would."""
    data = request.route_handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return
    raw = await request.body()
    try:
        payload = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise WhisprError(Reason.INVALID, f"the body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise WhisprError(Reason.INVALID, "the body must be a JSON object")
    decode_payload(data.annotation, payload)
