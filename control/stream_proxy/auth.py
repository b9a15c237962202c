"""The ``X-API-Token`` check of the stream proxy face (m3u-proxy's scheme): its route-guard rule.

The token in force is ``media.apiToken``; without one, the control token whenever the control
API asks for one (``control.token`` set, or a listener beyond loopback), so a node reachable
from the network never serves its stream API open by omission.  With neither, the face is open,
as m3u-proxy is without ``API_TOKEN``.  The header wins over ``?api_token=``; no token given is
401, a wrong one 403, both with ``WWW-Authenticate: Bearer`` as m3u-proxy answers.
"""
from __future__ import annotations

import falcon

from fastpath.control.auth import admin_session, required_token, token_matches
from fastpath.control.route_guard import Rule
from fastpath.control.stream_proxy.errors import ProxyError

MISSING = ("API token required. Provide token via X-API-Token header or api_token query "
           "parameter.")


def token_in_force(face) -> str | None:
    return face.api_token or required_token(face.node)


def check_token(token: str | None, req: falcon.Request, node=None) -> None:
    if token is None:
        return
    given = req.get_header("X-API-Token")
    if given is None:
        given = req.get_param("api_token")
    if not given:
        raise ProxyError(falcon.HTTP_401, "unauthorized", MISSING,
                         headers={"WWW-Authenticate": "Bearer"})
    if not token_matches(given, token) and not (node is not None and admin_session(node, given)):
        raise ProxyError(falcon.HTTP_403, "forbidden", "Invalid API token",
                         headers={"WWW-Authenticate": "Bearer"})


def stream_rule(face) -> Rule:
    token = token_in_force(face)
    return Rule("stream", lambda req, resource: check_token(token, req, face.node))


def protected(face_attr: str = "face"):
    """Marks a resource as one of the face's token-checked routes (documentation only: the
    route guard checks every route the face registers, marked or not)."""
    def mark(cls):
        return cls
    return mark
