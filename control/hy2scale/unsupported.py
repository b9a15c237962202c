"""Everything the reference offers that this node does not (yet): one table, 501 for each.

A route listed here answers every method with 501 and ``{"error": what is missing,
"capable": false}`` (the reference UI's error toast shows the body; its VPN tabs read
``capable``), so a panel sees "not supported", never a 404 it could take for a typo or a fake
success.  Rules are answered in ``extras.py`` (its GET carries the "not available" state the
UI reads from a 200); proxies are served (``proxies.py``).
"""
from __future__ import annotations

from fastpath.control.hy2scale.face import BASE
from fastpath.control.openapi import path_param
from fastpath.control.hy2scale.schemas import NOT_SUPPORTED

# (path prefix under /scale/api, what it is, why it is missing)
UNSUPPORTED = (
    ("/l2tp", "L2TP", "it drives kernel daemons (xl2tpd) outside a Python node's reach"),
    ("/ikev2", "IKEv2", "it drives kernel daemons (strongSwan) outside a Python node's reach"),
    ("/wireguard", "WireGuard", "it needs the kernel's WireGuard; not supported by this node"),
    ("/upgrade", "binary upgrade", "upgrade the node with its package manager instead"),
)
# Served at the prefix itself, 501 below it: (prefix, what, why).
UNSUPPORTED_BELOW = ()
METHODS = ("get", "post", "put", "patch", "delete")


class NotSupported:
    def __init__(self, what: str, why: str):
        self.message = f"{what}: {why}"
        for method in METHODS:
            setattr(self, f"on_{method}", self._answer)

    def _answer(self, req, resp, **_params):
        resp.status = "501 Not Implemented"
        resp.media = {"error": self.message, "message": self.message, "capable": False}


def register(app, api) -> None:
    not_supported = api.schema("Hy2ScaleNotSupported", NOT_SUPPORTED)
    for prefix, what, why in UNSUPPORTED:
        resource = NotSupported(what, why)
        app.add_route(BASE + prefix, resource)
        app.add_route(BASE + prefix + "/{rest:path}", resource)
        for method in METHODS:
            op = api.add(method.upper(), BASE + prefix, f"Not supported: {what} (501)", tag="hy2scale",
                         status=501, response=not_supported, secured=False,
                         errors={401: "no or expired token"})
            op["responses"]["501"]["description"] = why
            op["security"] = [{"hy2scale": []}]
    for prefix, what, why in UNSUPPORTED_BELOW:
        resource = NotSupported(what, why)
        app.add_route(BASE + prefix + "/{rest:path}", resource)
        path = BASE + prefix + "/{path}/nested"
        op = api.add("PUT", path, f"Not supported: {what} (501)", tag="hy2scale", status=501,
                     response=not_supported, secured=False, params=[path_param("path")],
                     errors={401: "no or expired token"})
        op["responses"]["501"]["description"] = why
        op["security"] = [{"hy2scale": []}]
