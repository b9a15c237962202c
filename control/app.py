"""The control API's app factory: media handlers, middleware, and one module per face.

Each face module exposes ``register(app, node)``, which adds its routes and returns the
:class:`~fastpath.control.route_guard.Rule` that authenticates them (None: the face is off in this
node).  Faces not present in this build are skipped.  The routes each face added are bound to
its rule here, so no route escapes a check by being forgotten.
"""
from __future__ import annotations

import importlib

import falcon
import falcon.media

from fastpath.control.errors import handle_unexpected, serialize_error
from fastpath.control.node_model import NodeModel
from fastpath.control import docs_ui
from fastpath.control.openapi import ANY_OBJECT, OpenApiResource, obj
from fastpath.control.route_guard import OPEN, PathNormaliser, RecordingApp, RouteGuard
from fastpath.control.shared_root import SharedRoot
from fastpath.control.validation import BoundedMessagePackHandler

FACES = (
    "fastpath.control.native",
    "fastpath.control.native_traffic",
    "fastpath.control.native_config",
    "fastpath.control.native_inbounds",
    "fastpath.control.metrics",
    "fastpath.control.traffic_stats",
    "fastpath.control.stream_proxy",
    "fastpath.control.hy2scale",
    "fastpath.control.dashboard",
)


class MsgpackNegotiation:
    """Answer in msgpack when the client asks for it with ``Accept: application/msgpack``."""

    def process_response(self, req, resp, resource, req_succeeded):
        if resp.media is not None and req.client_prefers((falcon.MEDIA_JSON, falcon.MEDIA_MSGPACK)) == falcon.MEDIA_MSGPACK \
                and "msgpack" in (req.accept or ""):
            resp.content_type = falcon.MEDIA_MSGPACK


def create_app(node: NodeModel) -> falcon.App:
    guard = RouteGuard()
    app = falcon.App(middleware=[PathNormaliser(), guard, MsgpackNegotiation()])
    handlers = {
        falcon.MEDIA_JSON: falcon.media.JSONHandler(),
        falcon.MEDIA_MSGPACK: BoundedMessagePackHandler(),
        "application/msgpack": BoundedMessagePackHandler(),
    }
    app.req_options.media_handlers.update(handlers)
    app.resp_options.media_handlers.update(handlers)
    app.req_options.strip_url_path_trailing_slash = True
    app.set_error_serializer(serialize_error)
    app.add_error_handler(Exception, handle_unexpected)
    # ``/`` belongs to more than one face (control/shared_root.py): they claim it while they
    # register, and it is added once here.
    root = node.shared_root = SharedRoot()
    for name in FACES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        recording = RecordingApp(app)
        rule = module.register(recording, node)
        added = recording.added
        if added and rule is None:
            raise RuntimeError(f"{name} added routes without an authentication rule")
        guard.bind(added, rule)
    if root.claims:
        app.add_route("/", root)
        guard.bind({"/"}, root.rule)
    node.openapi.add("GET", "/openapi.json", "This document: every route of every face", tag="docs",
                     secured=False,
                     response=obj({"openapi": {"const": "3.1.0"}, "info": ANY_OBJECT, "paths": ANY_OBJECT,
                                   "components": ANY_OBJECT}, extra=True), msgpack=False)
    app.add_route("/openapi.json", OpenApiResource(node.openapi))
    guard.bind({"/openapi.json", *docs_ui.register(app, node.openapi)}, OPEN)
    return app
