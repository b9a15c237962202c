"""Error bodies of the stream proxy face.

m3u-proxy is a FastAPI app, so the tools written for it read ``detail``; the node's own
clients read ``error``/``message``.  Every error of this face carries all three.

A request that does not validate (a body field, a query parameter) is a 422 whose ``detail``
is FastAPI's list ``[{type, loc, msg, input}]``, as m3u-proxy answers; refusals that are about
the state of things (no failover URLs, an unknown profile) stay 400 with a text ``detail``, as
there.  ``message`` is always our readable text.
"""
from __future__ import annotations

import re

import falcon

_INDEXED = re.compile(r"^([^\[]+)((?:\[\d+\])*)$")
_MISSING = object()


class ProxyError(falcon.HTTPError):
    def __init__(self, status, title: str, message: str, headers: dict | None = None,
                 errors: list[dict] | None = None):
        super().__init__(status, title=title, description=message, headers=headers)
        self.errors = errors


def bad_request(message: str) -> ProxyError:
    return ProxyError(falcon.HTTP_400, "bad request", message)


def loc_of(where: str, name: str) -> list:
    """FastAPI's ``loc`` of a field: ``failover_urls[2]`` in the body is
    ``["body", "failover_urls", 2]``."""
    m = _INDEXED.match(name)
    if m is None:
        return [where, name]
    return [where, m.group(1), *(int(i) for i in re.findall(r"\d+", m.group(2)))]


def invalid(name: str, message: str, value=_MISSING, *, where: str = "body",
            kind: str = "value_error") -> ProxyError:
    """A 422 for one field.  ``value`` missing means the field itself is missing."""
    if value is _MISSING:
        item = {"type": "missing", "loc": loc_of(where, name), "msg": "Field required", "input": None}
    else:
        item = {"type": kind, "loc": loc_of(where, name), "msg": f"Value error, {message}",
                "input": value if isinstance(value, (str, int, float, bool, type(None), list, dict)) else str(value)}
        if kind == "value_error":
            item["ctx"] = {"error": message}
    return ProxyError(falcon.HTTP_422, "unprocessable", message, errors=[item])


def invalid_body(message: str, kind: str, value=None, msg: str | None = None) -> ProxyError:
    """A 422 for the body as a whole (not JSON, not an object); ``msg`` is FastAPI's words."""
    item = {"type": kind, "loc": ["body"], "msg": msg or message, "input": value}
    return ProxyError(falcon.HTTP_422, "unprocessable", message, errors=[item])


def unprocessable(message: str) -> ProxyError:
    return ProxyError(falcon.HTTP_422, "unprocessable", message)


def not_found(message: str) -> ProxyError:
    return ProxyError(falcon.HTTP_404, "not found", message)


def handle_proxy_error(req, resp, exc: ProxyError, params) -> None:
    resp.status = exc.status
    for name, value in (exc.headers or {}).items():
        resp.set_header(name, value)
    detail = exc.errors if exc.errors is not None else exc.description
    resp.media = {"detail": detail, "error": exc.title, "message": exc.description}
