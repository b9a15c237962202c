"""The stream relay's control face, compatible with m3u-proxy's management API.

Streams and webhooks are written to the state store and announced to the workers with the
media commands; every figure is read from shared memory (``live.py``), never asked of a
worker.  Routes: see ``register``; auth: ``auth.py``.
"""
from __future__ import annotations

import falcon

from control.stream_proxy.auth import stream_rule
from control.stream_proxy.errors import ProxyError, handle_proxy_error
from control.stream_proxy.face import Face
from control.stream_proxy.hooks import Webhooks, WebhookTest
from control.stream_proxy.monitor import (
    ClientItem,
    Health,
    HlsClient,
    Stats,
    StatsClients,
    StatsDetailed,
    StatsPerformance,
    StatsStreams,
)
from control.stream_proxy.openapi_doc import document
from control.stream_proxy.streams import (
    StreamFailover,
    StreamItem,
    Streams,
    StreamsByMetadata,
    Transcode,
)


def register(app: falcon.App, node):
    face = Face(node)
    app.add_error_handler(ProxyError, handle_proxy_error)
    app.add_route("/streams", Streams(face))
    app.add_route("/streams/by-metadata", StreamsByMetadata(face))
    app.add_route("/streams/{stream_id}", StreamItem(face))
    app.add_route("/streams/{stream_id}/failover", StreamFailover(face))
    app.add_route("/transcode", Transcode(face))
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
    document(node.openapi)
    return stream_rule(face)
