"""Bearer-token auth of the native API and /metrics (the ``native`` rule of the route guard).

The token is required whenever one is configured, and always when the API binds beyond
loopback (then the generated token from secrets.json is used if none is configured).  A node
administrator's session token that a face issued (HY2 SCALE's admin login, registered in
``node.admin_sessions``) is accepted wherever the control token is: the dashboard logs in
either way, and both credentials already open everything on this node.  Which
routes it covers is decided by the route guard (``control/route_guard.py``) on the matched
route, never here on the path text.
"""
from __future__ import annotations

import hmac

import falcon

from fastpath.control.route_guard import Rule


def required_token(node) -> str | None:
    """The control token in force, or None when the control API asks for none (loopback
    without ``control.token``)."""
    control = node.config.control
    if control.token:
        return control.token
    if not control.on_loopback:
        return node.secrets.get("control_token")
    return None


def bearer_token(req: falcon.Request) -> str | None:
    header = req.get_header("Authorization") or ""
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and given.strip():
        return given.strip()
    return None


def token_matches(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), token.encode())


def admin_session(node, given: str | None) -> bool:
    """Whether ``given`` is a live administrator session of one of the node's faces."""
    return given is not None and any(valid(given) for valid in node.admin_sessions)


def bearer_rule(node) -> Rule:
    token = required_token(node)

    def check(req: falcon.Request, resource) -> None:
        given = bearer_token(req)
        if token is not None and not token_matches(given, token) and not admin_session(node, given):
            raise falcon.HTTPUnauthorized(
                title="unauthorized",
                description="a valid 'Authorization: Bearer <token>' header is required",
                challenges=["Bearer"])

    return Rule("native", check)
