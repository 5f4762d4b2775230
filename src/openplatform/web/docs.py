"""``/openapi.json`` (the committed OpenAPI 3.1 document) and ``/docs``, its readable reference page.

The page is rendered here from the same JSON, once per process: plain HTML with
our own stylesheet (``/static/docs.css``), no script and nothing from elsewhere.
"""

from __future__ import annotations

import functools
import html
import json
import re
from pathlib import Path
from typing import Any

from openplatform.web.kernel import HTML_TYPE, JSON_TYPE, Answer, ApiRoute, Call
from openplatform.web.responses import encode_headers

DOCUMENT = Path(__file__).resolve().parent / "openapi.json"
METHODS = ("get", "post", "put", "delete", "patch")
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@functools.cache
def document_bytes() -> bytes:
    return DOCUMENT.read_bytes()


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def inline(text: str) -> str:
    """Escape, then render `code` spans (the only markup the descriptions use)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(text))


def prose(text: str) -> str:
    """Paragraphs and pipe tables, as written in the document's descriptions."""
    parts: list[str] = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        if lines and lines[0].startswith("|"):
            rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines if not line.startswith("|--")]
            head = "".join(f"<th>{inline(c)}</th>" for c in rows[0])
            body = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        else:
            parts.append(f"<p>{inline(' '.join(lines))}</p>")
    return "".join(parts)


class Renderer:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.components = doc.get("components", {})

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            _, _, kind, name = node["$ref"].split("/")
            node = self.components[kind][name]
        return node

    def type_of(self, schema: dict[str, Any]) -> str:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[1]
            return f'<a href="#schema-{esc(name)}">{esc(name)}</a>'
        if "const" in schema:
            return f"<code>{esc(json.dumps(schema['const']))}</code>"
        if "enum" in schema:
            return " | ".join(f"<code>{esc(v)}</code>" for v in schema["enum"])
        if "oneOf" in schema:
            return " or ".join(self.type_of(s) for s in schema["oneOf"])
        kind = schema.get("type", "any")
        if kind == "array":
            return f"array of {self.type_of(schema.get('items', {}))}"
        if kind == "object" and schema.get("properties"):
            return "{" + ", ".join(f"{esc(k)}: {self.type_of(v)}" for k, v in schema["properties"].items()) + "}"
        return esc(" | ".join(kind) if isinstance(kind, list) else kind)

    def fields(self, schema: dict[str, Any]) -> str:
        schema = self.resolve(schema)
        required = set(schema.get("required", []))
        rows = []
        for name, field in schema.get("properties", {}).items():
            limits = ", ".join(f"{k} {field[k]}" for k in ("maxLength", "minimum", "maximum", "default") if k in field)
            note = inline(field.get("description", "")) + (f" <small>({esc(limits)})</small>" if limits else "")
            flag = "required" if name in required else ""
            rows.append(f"<tr><td><code>{esc(name)}</code></td><td>{self.type_of(field)}</td><td>{flag}</td>"
                        f"<td>{note}</td></tr>")  # fmt: skip
        if not rows:
            return f"<p>{self.type_of(schema)}</p>"
        return (
            "<table><thead><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr></thead>"
            + "".join(rows)
            + "</table>"
        )

    def parameters(self, params: list[dict[str, Any]]) -> str:
        if not params:
            return ""
        rows = []
        for param in (self.resolve(p) for p in params):
            flag = "required" if param.get("required") else ""
            rows.append(f"<tr><td><code>{esc(param['name'])}</code></td><td>{esc(param['in'])}</td>"
                        f"<td>{self.type_of(param.get('schema', {}))}</td><td>{flag}</td>"
                        f"<td>{inline(param.get('description', ''))}</td></tr>")  # fmt: skip
        head = "<tr><th>name</th><th>in</th><th>type</th><th>required</th><th>description</th></tr>"
        return f"<h4>Parameters</h4><table><thead>{head}</thead>" + "".join(rows) + "</table>"

    def responses(self, responses: dict[str, Any]) -> str:
        rows = []
        for status, response in responses.items():
            response = self.resolve(response)
            shapes = [
                f"{esc(media)}: {self.type_of(c.get('schema', {}))}" for media, c in response.get("content", {}).items()
            ]
            rows.append(f"<tr><td><code>{esc(status)}</code></td><td>{inline(response.get('description', ''))}"
                        f"<br><small>{'<br>'.join(shapes)}</small></td></tr>")  # fmt: skip
        return "<h4>Responses</h4><table>" + "".join(rows) + "</table>"

    def operation(self, path: str, method: str, op: dict[str, Any], shared: list[dict[str, Any]]) -> str:
        auth = " or ".join(", ".join(s) or "credentials in the body" for s in op.get("security", [])) or "none"
        body = op.get("requestBody")
        schema = next(iter(body["content"].values()))["schema"] if body else None
        return (
            f'<section class="op" id="{esc(op["operationId"])}"><h3><span class="method {method}">'
            f"{method.upper()}</span> <code>{esc(path)}</code></h3><p><strong>{inline(op.get('summary', ''))}"
            f"</strong></p>{prose(op.get('description', ''))}<p class=auth>Authentication: {esc(auth)}</p>"
            + self.parameters(shared + op.get("parameters", []))
            + (f"<h4>Body (JSON or form)</h4>{self.fields(schema)}" if schema else "")
            + self.responses(op.get("responses", {}))
            + "</section>"
        )

    def by_tag(self) -> dict[str, list[str]]:
        sections: dict[str, list[str]] = {t["name"]: [] for t in self.doc.get("tags", [])}
        for path, item in self.doc["paths"].items():
            for method in METHODS:
                if method in item:
                    op = item[method]
                    html_op = self.operation(path, method, op, item.get("parameters", []))
                    sections.setdefault(op.get("tags", ["Other"])[0], []).append(html_op)
        return sections

    def page(self) -> str:
        info = self.doc["info"]
        sections = self.by_tag()
        notes = {t["name"]: t.get("description", "") for t in self.doc.get("tags", [])}
        toc = "".join(f'<li><a href="#tag-{i}">{esc(name)}</a></li>' for i, name in enumerate(sections))
        body = "".join(
            f'<h2 id="tag-{i}">{esc(name)}</h2>{prose(notes.get(name, ""))}{"".join(ops)}'
            for i, (name, ops) in enumerate(sections.items())
        )
        schemas = "".join(
            f'<section class="schema" id="schema-{esc(name)}"><h3>{esc(name)}</h3>{self.fields(schema)}</section>'
            for name, schema in self.components.get("schemas", {}).items()
        )
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(info['title'])} API reference</title>"
            '<link rel="stylesheet" href="/static/docs.css"></head><body><main>'
            f"<h1>{esc(info['title'])} API reference <small>{esc(info['version'])}</small></h1>"
            f'{prose(info.get("description", ""))}<p><a href="/openapi.json">OpenAPI 3.1 document</a></p>'
            f"<nav><ul>{toc}</ul></nav>{body}<h2>Schemas</h2>{schemas}</main></body></html>"
        )


@functools.cache
def reference_page() -> bytes:
    return Renderer(json.loads(document_bytes())).page().encode()


OPENAPI_HEADERS = [JSON_TYPE, (b"cache-control", b"no-cache")]
DOCS_HEADERS = [HTML_TYPE, *encode_headers(PAGE_HEADERS)]


async def openapi_json(_call: Call) -> Answer:
    return 200, document_bytes(), OPENAPI_HEADERS


async def docs(_call: Call) -> Answer:
    return 200, reference_page(), DOCS_HEADERS


routes = [
    ApiRoute("GET", "/openapi.json", openapi_json, "openapi"),
    ApiRoute("GET", "/docs", docs, "docs"),
]
