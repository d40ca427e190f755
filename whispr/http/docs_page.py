"""The API's documentation page: plain HTML written from the OpenAPI document, offline.

Litestar's documentation pages (Swagger UI, ReDoc, Scalar, Stoplight Elements, RapiDoc) load
their scripts and styles from a CDN when the page opens, so none of them shows anything on
a machine without internet access, where a node often runs. This one is rendered on the
server from the same document ``/api/v1/openapi.json`` serves: every operation with its
parameters, body and responses, then every schema with its fields. No script, no asset.
"""

from __future__ import annotations

from html import escape
from typing import Any

from litestar import Request
from litestar.openapi.plugins import OpenAPIRenderPlugin

__all__ = ["DocsPage"]

#: Where the API serves its document (whispr/http/app.py).
OPENAPI_JSON = "/api/v1/openapi.json"
_METHODS = ("get", "put", "post", "delete", "patch", "head")
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; padding: 0 1em;
       line-height: 1.4; color: #222 }
h2 { border-bottom: 1px solid #ccc; margin-top: 2em }
.op { border: 1px solid #ddd; border-radius: 4px; margin: 1em 0; padding: 0.5em 1em }
.method { font-weight: bold; text-transform: uppercase; display: inline-block; width: 5em }
code { background: #f4f4f4; padding: 0 0.2em }
table { border-collapse: collapse } td, th { padding: 0.1em 0.8em 0.1em 0; text-align: left;
       vertical-align: top }
"""


def _type(schema: dict[str, Any] | None) -> str:
    """A schema in a few words: ``Message``, ``array of Member``, ``integer | null``."""
    if not schema:
        return "any"
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return f'<a href="#schema-{escape(name)}">{escape(name)}</a>'
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " | ".join(_type(s) for s in schema[key])
    kind = schema.get("type")
    if kind == "array":
        return f"array of {_type(schema.get('items'))}"
    if isinstance(kind, list):
        return " | ".join(escape(str(k)) for k in kind)
    if "const" in schema:
        return f"<code>{escape(repr(schema['const']))}</code>"
    if "enum" in schema:
        return " | ".join(f"<code>{escape(str(v))}</code>" for v in schema["enum"])
    return escape(str(kind or "object"))


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    parts = [
        f'<div class="op" id="{escape(op.get("operationId", ""))}">',
        f'<span class="method">{method}</span> <code>{escape(path)}</code>',
    ]
    if op.get("summary"):
        parts.append(f"<p><b>{escape(op['summary'])}</b></p>")
    if op.get("description"):
        parts.append(f"<p>{escape(op['description'])}</p>")
    params = op.get("parameters") or []
    if params:
        parts.append("<table><tr><th>parameter</th><th>in</th><th>type</th><th></th></tr>")
        for p in params:
            required = "required" if p.get("required") else ""
            parts.append(
                f"<tr><td><code>{escape(p.get('name', ''))}</code></td>"
                f"<td>{escape(p.get('in', ''))}</td><td>{_type(p.get('schema'))}</td>"
                f"<td>{required}</td></tr>"
            )
        parts.append("</table>")
    body = (op.get("requestBody") or {}).get("content") or {}
    for media, content in body.items():
        parts.append(f"<p>body ({escape(media)}): {_type(content.get('schema'))}</p>")
    responses = op.get("responses") or {}
    if responses:
        parts.append("<table><tr><th>status</th><th>body</th><th></th></tr>")
        for status, response in responses.items():
            content = response.get("content") or {}
            kinds = ", ".join(_type(c.get("schema")) for c in content.values()) or "none"
            parts.append(
                f"<tr><td>{escape(str(status))}</td><td>{kinds}</td>"
                f"<td>{escape(response.get('description', ''))}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</div>")
    return "\n".join(parts)


def _schema(name: str, schema: dict[str, Any]) -> str:
    parts = [f'<div class="op" id="schema-{escape(name)}"><b>{escape(name)}</b>']
    if schema.get("description"):
        parts.append(f"<p>{escape(schema['description'])}</p>")
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    if properties:
        parts.append("<table>")
        for field, spec in properties.items():
            mark = "required" if field in required else ""
            parts.append(
                f"<tr><td><code>{escape(field)}</code></td><td>{_type(spec)}</td>"
                f"<td>{mark}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</div>")
    return "\n".join(parts)


def render_page(document: dict[str, Any], json_url: str) -> str:
    """The page for an OpenAPI document (a dict as ``openapi.json`` holds it)."""
    info = document.get("info") or {}
    title = escape(str(info.get("title", "API")))
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{title}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{title} <small>{escape(str(info.get('version', '')))}</small></h1>",
        f"<p>{escape(str(info.get('description', '')))}</p>",
        f'<p>The OpenAPI 3.1 document: <a href="{escape(json_url)}">{escape(json_url)}</a></p>',
        "<h2>Operations</h2>",
    ]
    for path, item in (document.get("paths") or {}).items():
        for method in _METHODS:
            if method in item:
                parts.append(_operation(path, method, item[method]))
    parts.append("<h2>Schemas</h2>")
    schemas = (document.get("components") or {}).get("schemas") or {}
    for name in sorted(schemas):
        parts.append(_schema(name, schemas[name]))
    parts.append("</body></html>")
    return "\n".join(parts)


class DocsPage(OpenAPIRenderPlugin):
    """Litestar's render plugin for :func:`render_page`."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return render_page(openapi_schema, OPENAPI_JSON).encode()
