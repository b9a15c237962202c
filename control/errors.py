"""One shape for every error body of the native API: ``{"error": title, "message": detail}``.

Faces that must answer byte-exact bodies of another product (Traffic Stats API) set their own
responses instead of raising.
"""
from __future__ import annotations

import json
import logging

import falcon

log = logging.getLogger("fastpath.control")


def bad_request(message: str) -> falcon.HTTPBadRequest:
    return falcon.HTTPBadRequest(title="bad request", description=message)


def not_found(message: str) -> falcon.HTTPNotFound:
    return falcon.HTTPNotFound(title="not found", description=message)


def conflict(message: str) -> falcon.HTTPConflict:
    return falcon.HTTPConflict(title="conflict", description=message)


def serialize_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    body = {"error": exc.title or "error"}
    if exc.description:
        body["message"] = exc.description
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps(body)


def handle_unexpected(req, resp, exc, params):
    """Anything not raised on purpose is logged and answered as a JSON 500 (never a traceback)."""
    if isinstance(exc, falcon.HTTPError):
        raise exc
    log.exception("unhandled error on %s %s", req.method, req.path)
    raise falcon.HTTPInternalServerError(title="internal error",
                                         description="the node failed to handle this request; see its log")
