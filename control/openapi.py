"""The OpenAPI 3.1 document, assembled from what each face registers.

Swagger UI (``/docs``) and ReDoc (``/redoc``) render it (control/docs_ui.py).  Every operation
declares the body its success answers carry (``response``, or ``empty=True`` for a 204 or an
empty 200) and the body of each error it lists (the face's error shape): the schemas are plain
JSON Schema 2020-12 (OpenAPI 3.1's dialect), written next to the handlers they describe, and
``tests/control/test_openapi_conformance.py`` checks real answers of a running node against
them.
"""
from __future__ import annotations

import json

import falcon

from fastpath.control.route_guard import PUBLIC


def obj(props: dict, *, optional: dict | None = None, extra: bool = False, **more) -> dict:
    """An object schema: every key of ``props`` is always there, ``optional``'s may be;
    ``extra`` allows keys beyond both (maps of ids, documents a face passes through)."""
    schema = {"type": "object", "properties": {**props, **(optional or {})},
              "required": list(props), **more}
    if not extra:
        schema["additionalProperties"] = False
    return schema


def array(items: dict, **more) -> dict:
    return {"type": "array", "items": items, **more}


def nullable(schema: dict) -> dict:
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def map_of(values: dict, **more) -> dict:
    """An object whose keys are ids (users, ports) and whose values are ``values``."""
    return {"type": "object", "additionalProperties": values, **more}


MSGPACK = "application/msgpack"
STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NUMBER = {"type": "number"}
BOOLEAN = {"type": "boolean"}
TIME = {"type": "string", "format": "date-time"}
ANY_OBJECT = {"type": "object"}
HTML = {"type": "string", "description": "an HTML page"}
BINARY = {"type": "string", "format": "binary"}

# The body of every error a falcon face raises (control/errors.py ``serialize_error``): the
# title, and the readable detail when there is one.  Faces with a shape of their own (the
# stream proxy's FastAPI-style ``detail``, the Traffic Stats API's plain text) declare theirs.
ERROR = obj({"error": STRING}, optional={"message": STRING}, extra=True,
            description="error: the kind of refusal; message: what was wrong")


class OpenApiBuilder:
    def __init__(self, title: str, version: str):
        self.doc = {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version},
            "paths": {},
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                           "schemas": {}},
        }
        self.error_ref = self.schema("Error", ERROR)

    def schema(self, name: str, schema: dict) -> dict:
        self.doc["components"]["schemas"][name] = schema
        return {"$ref": f"#/components/schemas/{name}"}

    def add(self, method: str, path: str, summary: str, *, tag: str, body: dict | None = None,
            response: dict | None = None, params: list[dict] | None = None,
            errors: dict[int, str] | None = None, secured: bool = True,
            content_type: str = "application/json", status: int = 200,
            content: dict[str, dict] | None = None, empty: bool = False,
            error_schema: dict | None = None, error_type: str = "application/json",
            msgpack: bool = True) -> dict:
        """One operation.  The success answer is ``status`` with ``response`` as
        ``content_type`` (or ``content``: several media types), or no body with ``empty``;
        each of ``errors`` carries ``error_schema`` (the node's ``Error`` unless given).

        A JSON success answer is also offered as msgpack, the same shape, to a request with
        ``Accept: application/msgpack`` (``app.MsgpackNegotiation``); ``msgpack=False`` for a
        route that writes its JSON bytes whatever is asked (the Traffic Stats API's)."""
        op: dict = {"summary": summary, "tags": [tag], "responses": {}}
        ok: dict = {"description": "no body" if empty else "OK"}
        if empty:
            ok["x-no-body"] = True
        if content is None and response is not None:
            content = {content_type: response}
        if content and msgpack and "application/json" in content:
            content = {**content, MSGPACK: content["application/json"]}
        if content:
            ok["content"] = {t: {"schema": s} for t, s in content.items()}
        op["responses"][str(status)] = ok
        err = self.error_ref if error_schema is None else error_schema
        for code, text in (errors or {}).items():
            answer: dict = {"description": text}
            if code != 304:
                answer["content"] = {error_type: {"schema": err}}
            op["responses"][str(code)] = answer
        if body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
        if params:
            op["parameters"] = params
        if secured:
            op["security"] = [{"bearer": []}]
        self.doc["paths"].setdefault(path, {})[method.lower()] = op
        return op


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
