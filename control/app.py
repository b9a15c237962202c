"""The control API's app factory: media handlers, middleware, and one module per face.

Each face module exposes ``register(app, node)``; faces not present in this build are skipped.
"""
from __future__ import annotations

import importlib

import falcon
import falcon.media

from control.auth import BearerAuth
from control.errors import handle_unexpected, serialize_error
from control.node_model import NodeModel
from control.openapi import DocsResource, OpenApiResource

FACES = (
    "control.native",
    "control.native_traffic",
    "control.metrics",
    "control.traffic_stats",
    "control.stream_proxy",
    "control.hy2scale",
)


class MsgpackNegotiation:
    """Answer in msgpack when the client asks for it with ``Accept: application/msgpack``."""

    def process_response(self, req, resp, resource, req_succeeded):
        if resp.media is not None and req.client_prefers((falcon.MEDIA_JSON, falcon.MEDIA_MSGPACK)) == falcon.MEDIA_MSGPACK \
                and "msgpack" in (req.accept or ""):
            resp.content_type = falcon.MEDIA_MSGPACK


def create_app(node: NodeModel) -> falcon.App:
    app = falcon.App(middleware=[BearerAuth(node), MsgpackNegotiation()])
    handlers = {
        falcon.MEDIA_JSON: falcon.media.JSONHandler(),
        falcon.MEDIA_MSGPACK: falcon.media.MessagePackHandler(),
        "application/msgpack": falcon.media.MessagePackHandler(),
    }
    app.req_options.media_handlers.update(handlers)
    app.resp_options.media_handlers.update(handlers)
    app.req_options.strip_url_path_trailing_slash = True
    app.set_error_serializer(serialize_error)
    app.add_error_handler(Exception, handle_unexpected)
    for name in FACES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(app, node)
    app.add_route("/openapi.json", OpenApiResource(node.openapi))
    app.add_route("/docs", DocsResource(node.openapi))
    return app
