"""Every route of every face, spelled every way a path can be spelled, without a credential and
with a wrong one: never a 2xx.

The routes come from the router's own table (an app built from the running node's config), so
a route added later is walked without touching this test.  Public routes (health, ping, login,
build-id, docs) are the only ones left out, and they are named by the resources themselves."""
from __future__ import annotations

import falcon.inspect
import pytest

from fastpath.control.app import create_app
from fastpath.control.node_model import NodeModel
from fastpath.control.route_guard import PUBLIC
from fastpath.config import load_config
from tests.security.conftest import raw_request

REFUSED = {401, 403, 404}


def _concrete(template: str) -> str:
    parts = []
    for part in template.split("/"):
        parts.append("x" if part.startswith("{") else part)
    return "/".join(parts)


def spellings(path: str) -> list[str]:
    """The ways a client can write ``path`` that a naive prefix check would not recognise."""
    out = ["/" + path, path + "/", "//" + path.lstrip("/") + "//", path.upper()]
    if path.count("/") >= 2:
        head, _, tail = path[1:].partition("/")
        out += [f"/{head}%2F{tail}", f"/{head}//{tail}", f"/{head}/./{tail}",
                f"/{head}/x/../{tail}", f"/{head}%2f{tail}/"]
    else:
        out += [path + "/.", "/./" + path.lstrip("/")]
    return out


def guarded_routes(node) -> list[tuple[str, str]]:
    app = create_app(NodeModel(load_config(node.config_path, node.data_dir)))
    routes = []
    for info in falcon.inspect.inspect_routes(app):
        for method in info.methods:
            if method.internal or method.method in ("OPTIONS", "WEBSOCKET"):
                continue
            routes.append((method.method, info.path, method))
    # Leave out only what the resource itself declares public.
    public = {(info.path) for info in falcon.inspect.inspect_routes(app)
              if _resource_is_public(app, info.path)}
    return [(m, p) for m, p, _ in routes if p not in public]


def _resource_is_public(app, template: str) -> bool:
    resource, _methods, _params, uri = app._router.find(_concrete(template)) or (None,) * 4
    return uri == template and getattr(resource, "auth_rule", None) == PUBLIC


def test_the_walk_covers_every_face(exposed):
    routes = guarded_routes(exposed)
    paths = {p for _m, p in routes}
    for prefix in ("/api/v1/", "/metrics", "/traffic", "/kick", "/streams", "/scale/api/users",
                   "/scale/api/backup", "/webhooks"):
        assert any(p.startswith(prefix) for p in paths), prefix
    assert len(routes) > 60


@pytest.mark.parametrize("credential", [None, "wrong"])
def test_no_spelling_of_any_guarded_route_answers_2xx(exposed, credential):
    headers = {}
    if credential:
        headers = {"Authorization": f"Bearer {credential}", "X-API-Token": credential}
    leaks = []
    for method, template in guarded_routes(exposed):
        path = _concrete(template)
        body = b"{}" if method in ("POST", "PUT", "PATCH") else None
        for spelled in [path, *spellings(path)]:
            r = raw_request(exposed, method, spelled, body, {**headers, "Content-Type": "application/json"})
            if r.status not in REFUSED:
                leaks.append((method, spelled, r.status, r.body[:80]))
    assert not leaks, leaks
