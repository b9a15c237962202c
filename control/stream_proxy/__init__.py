"""The stream relay's control face, compatible with m3u-proxy's management API.

Streams and webhooks are written to the state store and announced to the workers with the
media commands; every figure is read from shared memory (``live.py``), never asked of a
worker.  Routes: see ``register``; auth: ``auth.py``.
"""
from __future__ import annotations

import falcon

from fastpath.control import shared_root
from fastpath.control.stream_proxy.about import Info, Root, TestConnection, TranscodeProfiles
from fastpath.control.stream_proxy.auth import stream_rule
from fastpath.control.stream_proxy.errors import ProxyError, handle_proxy_error
from fastpath.control.stream_proxy.face import Face
from fastpath.control.stream_proxy.hooks import Webhooks, WebhookTest
from fastpath.control.stream_proxy.monitor import (
    ClientItem,
    Health,
    HlsClient,
    Stats,
    StatsClients,
    StatsDetailed,
    StatsPerformance,
    StatsStreams,
)
from fastpath.control.stream_proxy.openapi_doc import document
from fastpath.control.stream_proxy.streams import (
    StreamFailover,
    StreamItem,
    Streams,
    StreamsByMetadata,
    StreamsOldestByMetadata,
    Transcode,
)


def api_client(req: falcon.Request) -> bool:
    """A request from an m3u-proxy client rather than a browser: it carries the token, or does
    not prefer HTML (``GET /`` is shared with the Traffic Stats index)."""
    if req.get_header("X-API-Token") is not None or req.get_param("api_token") is not None:
        return True
    return req.client_prefers(("application/json", "text/html")) != "text/html"


def register(app: falcon.App, node):
    face = Face(node)
    app.add_error_handler(ProxyError, handle_proxy_error)
    app.add_route("/streams", Streams(face))
    app.add_route("/streams/by-metadata", StreamsByMetadata(face))
    app.add_route("/streams/oldest-by-metadata", StreamsOldestByMetadata(face))
    app.add_route("/streams/{stream_id}", StreamItem(face))
    app.add_route("/streams/{stream_id}/failover", StreamFailover(face))
    app.add_route("/transcode", Transcode(face))
    app.add_route("/transcode/profiles", TranscodeProfiles(face))
    app.add_route("/info", Info(face))
    app.add_route("/test-connection", TestConnection(face))
    app.add_route("/stats", Stats(face))
    app.add_route("/stats/detailed", StatsDetailed(face))
    app.add_route("/stats/performance", StatsPerformance(face))
    app.add_route("/stats/streams", StatsStreams(face))
    app.add_route("/stats/clients", StatsClients(face))
    app.add_route("/clients", StatsClients(face))
    app.add_route("/clients/{client_id}", ClientItem(face))
    app.add_route("/hls/{stream_id}/clients/{client_id}", HlsClient(face))
    app.add_route("/health", Health(face))
    app.add_route("/webhooks", Webhooks(face))
    app.add_route("/webhooks/test", WebhookTest(face))
    rule = stream_rule(face)
    root = Root(face)
    if not shared_root.claim(node, "stream", root, rule, wants=api_client):
        app.add_route("/", root)
    document(node.openapi)
    return rule
