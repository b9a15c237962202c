"""The OpenAPI 3.1 document, assembled from what each face registers, and a docs page.

The docs page is rendered on the server from the document itself, so it works on a node with
no internet access (no CDN-hosted UI bundle).
"""
from __future__ import annotations

import html
import json

import falcon

from control.route_guard import PUBLIC


_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


class OpenApiBuilder:
    def __init__(self, title: str, version: str):
        self.doc = {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version},
            "paths": {},
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                           "schemas": {}},
        }

    def schema(self, name: str, schema: dict) -> dict:
        self.doc["components"]["schemas"][name] = schema
        return {"$ref": f"#/components/schemas/{name}"}

    def add(self, method: str, path: str, summary: str, *, tag: str, body: dict | None = None,
            response: dict | None = None, params: list[dict] | None = None,
            errors: dict[int, str] | None = None, secured: bool = True,
            content_type: str = "application/json") -> None:
        op: dict = {"summary": summary, "tags": [tag], "responses": {}}
        ok = {"description": "OK"}
        if response is not None:
            ok["content"] = {content_type: {"schema": response}}
        op["responses"]["200"] = ok
        for code, text in (errors or {}).items():
            op["responses"][str(code)] = {"description": text}
        if body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
        if params:
            op["parameters"] = params
        if secured:
            op["security"] = [{"bearer": []}]
        self.doc["paths"].setdefault(path, {})[method.lower()] = op


def query(name: str, schema: dict, description: str = "", required: bool = False) -> dict:
    return {"name": name, "in": "query", "required": required, "schema": schema,
            "description": description}


def path_param(name: str, description: str = "") -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"},
            "description": description}


class OpenApiResource:
    auth_rule = PUBLIC

    def __init__(self, builder: OpenApiBuilder):
        self.builder = builder

    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_JSON
        resp.text = json.dumps(self.builder.doc)


class DocsResource:
    auth_rule = PUBLIC

    def __init__(self, builder: OpenApiBuilder):
        self.builder = builder

    def on_get(self, req, resp):
        doc = self.builder.doc
        rows = []
        for path in sorted(doc["paths"]):
            for method, op in doc["paths"][path].items():
                if method not in _METHODS:      # path-level keys (servers, parameters)
                    continue
                params = ", ".join(p["name"] for p in op.get("parameters", []))
                rows.append(
                    f"<tr><td class=m>{method.upper()}</td><td><code>{html.escape(path)}</code></td>"
                    f"<td>{html.escape(op['tags'][0])}</td><td>{html.escape(op['summary'])}</td>"
                    f"<td>{html.escape(params)}</td></tr>")
        resp.content_type = falcon.MEDIA_HTML
        resp.text = (
            "<!doctype html><html><head><meta charset=utf-8><title>"
            f"{html.escape(doc['info']['title'])}</title><style>body{{font-family:sans-serif;"
            "margin:2em}}td{{padding:4px 10px;border-bottom:1px solid #ddd}}.m{{font-weight:bold}}"
            "</style></head><body>"
            f"<h1>{html.escape(doc['info']['title'])} {html.escape(doc['info']['version'])}</h1>"
            "<p>Machine-readable document: <a href=/openapi.json>/openapi.json</a></p>"
            "<table><tr><th>method</th><th>path</th><th>face</th><th>summary</th><th>parameters</th></tr>"
            + "".join(rows) + "</table></body></html>")
