"""The OpenAPI 3.1 document, assembled from what each face registers.

Swagger UI (``/docs``) and ReDoc (``/redoc``) render it (control/docs_ui.py).
"""
from __future__ import annotations

import json

import falcon

from fastpath.control.route_guard import PUBLIC



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
