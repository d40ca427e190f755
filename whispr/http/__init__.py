"""The HTTP API (``/api/v1``): clients' and backends' operations over plain HTTP.

:mod:`.app` builds the Litestar application, :mod:`.routes` holds one module per resource,
:mod:`.auth` says who calls, :mod:`.problems` turns refusals into RFC 9457 problem
documents, :mod:`.server` serves it with uvicorn as a service of the node's tree.
See docs/http.md.
"""
