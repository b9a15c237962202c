"""The ``X-API-Token`` check of the stream proxy face (m3u-proxy's scheme).

Only when ``media.apiToken`` is configured.  The header wins over ``?api_token=``; no token
given is 401, a wrong one 403.  The node's bearer token (``control/auth.py``) guards only
``/api/v1`` and ``/metrics``, so these routes are checked here and nowhere else.
"""
from __future__ import annotations

import hmac

import falcon

from control.stream_proxy.errors import ProxyError

MISSING = ("API token required. Provide token via X-API-Token header or api_token query "
           "parameter.")


def check_token(token: str | None, req: falcon.Request) -> None:
    if token is None:
        return
    given = req.get_header("X-API-Token")
    if given is None:
        given = req.get_param("api_token")
    if not given:
        raise ProxyError(falcon.HTTP_401, "unauthorized", MISSING,
                         headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode()):
        raise ProxyError(falcon.HTTP_403, "forbidden", "Invalid API token",
                         headers={"WWW-Authenticate": "Bearer"})


def protected(face_attr: str = "face"):
    """Class decorator: every responder of the resource checks the token first."""
    def hook(req, resp, resource, params):
        check_token(getattr(resource, face_attr).api_token, req)
    return falcon.before(hook)
