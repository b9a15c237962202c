"""Error bodies of the stream proxy face.

m3u-proxy is a FastAPI app, so the tools written for it read ``detail``; the node's own
clients read ``error``/``message``.  Every error of this face carries all three.
"""
from __future__ import annotations

import falcon


class ProxyError(falcon.HTTPError):
    def __init__(self, status, title: str, message: str, headers: dict | None = None):
        super().__init__(status, title=title, description=message, headers=headers)


def bad_request(message: str) -> ProxyError:
    return ProxyError(falcon.HTTP_400, "bad request", message)


def unprocessable(message: str) -> ProxyError:
    return ProxyError(falcon.HTTP_422, "unprocessable", message)


def not_found(message: str) -> ProxyError:
    return ProxyError(falcon.HTTP_404, "not found", message)


def handle_proxy_error(req, resp, exc: ProxyError, params) -> None:
    resp.status = exc.status
    for name, value in (exc.headers or {}).items():
        resp.set_header(name, value)
    resp.media = {"detail": exc.description, "error": exc.title, "message": exc.description}
