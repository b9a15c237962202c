"""Bearer-token auth of the native API and /metrics.

The token is required whenever one is configured, and always when the API binds beyond
loopback (then the generated token from secrets.json is used if none is configured).  Other
faces (Traffic Stats, stream proxy, HY2 SCALE) have their own schemes and are not touched here.
"""
from __future__ import annotations

import hmac

import falcon

PROTECTED_PREFIXES = ("/api/v1", "/metrics")
PUBLIC_PATHS = ("/api/v1/health", "/api/v1/ping")


def required_token(node) -> str | None:
    control = node.config.control
    if control.token:
        return control.token
    if not control.on_loopback:
        return node.secrets.get("control_token")
    return None


class BearerAuth:
    def __init__(self, node):
        self.token = required_token(node)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.token is None or req.path in PUBLIC_PATHS:
            return
        if not req.path.startswith(PROTECTED_PREFIXES):
            return
        header = req.get_header("Authorization") or ""
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise falcon.HTTPUnauthorized(title="unauthorized",
                                          description="a valid 'Authorization: Bearer <token>' header is required",
                                          challenges=["Bearer"])
