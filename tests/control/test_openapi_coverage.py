"""The one OpenAPI document names every route of every face: the router's own table of an app
built with every face on is walked, so a route added later without a document entry fails here;
every operation says what its success answers carry (a schema, or explicitly no body) and
what each error it lists carries; and no operation is documented that the router does not
serve.  That the schemas are what the handlers answer is ``test_openapi_conformance.py``'s
part (a running node, real answers).

A path-wildcard route (``/scale/api/l2tp/{rest:path}``, answering 501 below a documented prefix)
is covered by its prefix's entry: OpenAPI has no way to say "any path below"."""
from __future__ import annotations

import re

import falcon.inspect
import yaml
from jsonschema import Draft202012Validator

from fastpath.control.app import create_app
from fastpath.control.node_model import NodeModel
from fastpath.config import load_config


def _app(tmp_path):
    cfg = {"control": {"listen": "127.0.0.1:1", "token": "t"}, "media": {"listen": "127.0.0.1:2"},
           "scale": {}, "trafficStats": {"secret": "s"}}
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(cfg))
    (tmp_path / "data").mkdir()
    node = NodeModel(load_config(path, tmp_path / "data"))
    return create_app(node), node.openapi.doc


def _shape(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", template)


def test_every_route_of_every_face_is_documented(tmp_path):
    app, doc = _app(tmp_path)
    documented = {(m.upper(), _shape(p)) for p, item in doc["paths"].items()
                  for m, op in item.items() if isinstance(op, dict) and "responses" in op}
    prefixes = {_shape(p) for _, p in documented}
    missing, routes = [], 0
    for info in falcon.inspect.inspect_routes(app):
        for method in info.methods:
            if method.internal or method.method in ("OPTIONS", "WEBSOCKET"):
                continue
            routes += 1
            key = (method.method, _shape(info.path))
            if key in documented:
                continue
            wildcard = re.match(r"^(.*)/\{\w+:path\}$", info.path)
            if wildcard and _shape(wildcard.group(1)) in prefixes:
                continue
            missing.append(key)
    assert routes > 150
    assert not missing, f"{len(missing)} routes without a document entry: {sorted(missing)}"


def test_the_document_has_request_bodies_and_response_schemas_where_they_are_declared(tmp_path):
    """Every documented operation has responses, every path parameter is declared, and the
    schemas it points at exist."""
    _, doc = _app(tmp_path)
    schemas = doc["components"]["schemas"]
    text = str(doc)
    for ref in set(re.findall(r"#/components/schemas/(\w+)", text)):
        assert ref in schemas, ref
    for path, item in doc["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", path))
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert names <= declared, (method, path, names - declared)


def _operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "responses" in op:
                yield method.upper(), path, item, op


def test_every_operation_has_a_response_schema(tmp_path):
    """A success answer (2xx; 501 for what the node does not support) with a schema per media
    type or an explicit ``x-no-body``; an error listed with the schema of its body."""
    _, doc = _app(tmp_path)
    lacking = []
    for method, path, _item, op in _operations(doc):
        answers = op["responses"]
        success = [c for c in answers if c.startswith("2")] or [c for c in answers if c == "501"]
        if not success:
            lacking.append((method, path, "no success answer"))
        for code, answer in answers.items():
            if code == "304" or answer.get("x-no-body"):
                assert "content" not in answer, (method, path, code)
                continue
            content = answer.get("content") or {}
            if not content or not all("schema" in media for media in content.values()):
                lacking.append((method, path, code))
    assert not lacking, f"{len(lacking)} answers without a schema: {lacking}"


def test_every_schema_is_valid_json_schema(tmp_path):
    """OpenAPI 3.1 schemas are JSON Schema 2020-12: each one checks as such, with its
    references resolved inside the document."""
    _, doc = _app(tmp_path)
    components = doc["components"]
    for name, schema in components["schemas"].items():
        Draft202012Validator.check_schema({**schema, "components": components})
    for method, path, _item, op in _operations(doc):
        bodies = [op.get("requestBody", {}).get("content", {})]
        bodies += [a.get("content", {}) for a in op["responses"].values()]
        for content in bodies:
            for media in content.values():
                Draft202012Validator.check_schema({**media["schema"], "components": components})


def _router_pattern(template: str) -> re.Pattern:
    out = re.sub(r"\\\{\w+:path\\\}", ".+", re.escape(template))
    return re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", out) + "$")


def test_no_operation_is_documented_that_the_router_does_not_serve(tmp_path):
    """The reverse of the first test: a documented method the route does not answer (405 in
    truth) fails, whatever the document says.  The media listener's routes (their own
    ``servers`` entry) are served by the workers, not this app."""
    app, doc = _app(tmp_path)
    routes = [(_router_pattern(info.path), {m.method for m in info.methods if not m.internal})
              for info in falcon.inspect.inspect_routes(app)]
    ghosts = []
    for method, path, item, _op in _operations(doc):
        if "servers" in item:
            continue
        sample = re.sub(r"\{[^}]+\}", "x", path)
        served = set().union(*(methods for rx, methods in routes if rx.match(sample)))
        if method not in served:
            ghosts.append((method, path))
    assert not ghosts, f"documented but not served: {ghosts}"
