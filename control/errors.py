"""One shape for every error body of the native API: ``{"error": title, "message": detail}``.

Faces that must answer byte-exact bodies of another product (Traffic Stats API) set their own
responses instead of raising.
"""
from __future__ import annotations

import errno
import json
import logging
import sqlite3
from contextlib import contextmanager

import falcon

log = logging.getLogger("fastpath.control")


def bad_request(message: str) -> falcon.HTTPBadRequest:
    return falcon.HTTPBadRequest(title="bad request", description=message)


def not_found(message: str) -> falcon.HTTPNotFound:
    return falcon.HTTPNotFound(title="not found", description=message)


def conflict(message: str) -> falcon.HTTPConflict:
    return falcon.HTTPConflict(title="conflict", description=message)


@contextmanager
def store_refusals():
    """The store's refusals as the native API answers them: 404 for an unknown id, 409 for a
    clash, with the store's message."""
    from fastpath.store import Conflict, NotFound
    try:
        yield
    except NotFound as exc:
        raise not_found(str(exc)) from None
    except Conflict as exc:
        raise conflict(str(exc)) from None


def serialize_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    body = {"error": exc.title or "error"}
    if exc.description:
        body["message"] = exc.description
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps(body)


_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN = 8, 10, 13, 14


def storage_error(exc: BaseException) -> falcon.HTTPError | None:
    """507 when the data dir's disk is full, 503 when it cannot be written (read-only, I/O
    error); None for anything else.  Nothing was saved in either case: the store's transaction
    rolled back."""
    full = readonly = False
    if isinstance(exc, sqlite3.Error):
        code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
        full = code == _SQLITE_FULL
        readonly = code in (_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CANTOPEN)
    elif isinstance(exc, OSError):
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        readonly = exc.errno in (errno.EROFS, errno.EIO, errno.EACCES)
    if full:
        return falcon.HTTPError(falcon.HTTP_507, title="insufficient storage",
                                description="the node's data disk is full; the change was not "
                                            "saved (traffic keeps flowing)")
    if readonly:
        return falcon.HTTPServiceUnavailable(
            title="storage unavailable",
            description="the node's data dir cannot be written (read-only or failing); the "
                        "change was not saved (traffic keeps flowing)")
    return None


def handle_unexpected(req, resp, exc, params):
    """Anything not raised on purpose is logged and answered as a JSON 500 (never a traceback);
    a full or unwritable disk is a 507 or 503 (see ``storage_error``)."""
    if isinstance(exc, falcon.HTTPError):
        raise exc
    from fastpath.control.node_model import NodeUnavailable
    if isinstance(exc, NodeUnavailable):
        raise falcon.HTTPServiceUnavailable(title=exc.title, description=exc.description)
    storage = storage_error(exc)
    if storage is not None:
        log.warning("%s %s not saved: %s", req.method, req.path, exc)
        raise storage
    log.exception("unhandled error on %s %s", req.method, req.path)
    raise falcon.HTTPInternalServerError(title="internal error",
                                         description="the node failed to handle this request; see its log")
