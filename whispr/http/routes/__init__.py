"""The HTTP API's routes: one module per resource, each a Litestar ``Router``.

``conversations``, ``members``, ``messages``, ``receipts`` and ``settings`` are the client API
(``/api/v1``); ``server`` is the backends' (``/api/v1/server``). Each handler is one call of
the function the matching WebSocket event (or gRPC call) makes, so one permission table and
one set of refusals serve every transport; a new resource is one more module here, listed
in :data:`whispr.http.app.CLIENT_ROUTERS` or :data:`~whispr.http.app.SERVER_ROUTERS`.
"""
