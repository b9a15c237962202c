"""The one OpenAPI document names every route of every face: the router's own table of an app
built with every face on is walked, so a route added later without a document entry fails here.

A path-wildcard route (``/scale/api/l2tp/{rest:path}``, answering 501 below a documented prefix)
is covered by its prefix's entry: OpenAPI has no way to say "any path below"."""
from __future__ import annotations

import re

import falcon.inspect
import yaml

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
