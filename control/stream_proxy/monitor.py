"""``/stats*``, ``/clients*``, ``DELETE /hls/{id}/clients/{client}`` and ``/health``: figures
from one shared-memory scan, and the one action on a viewer (disconnect)."""
from __future__ import annotations

import time

import falcon

from fastpath.control.stream_proxy import figures
from fastpath.control.stream_proxy.auth import protected
from fastpath.control.stream_proxy.errors import not_found
from fastpath.control.stream_proxy.face import Face, result_sum, wants_msgpack
from fastpath.control.stream_proxy.kinds import M3U_PROXY_VERSION, root_path
from fastpath.control.stream_proxy.streams import list_streams
from fastpath.control.stream_proxy.views import client_view
from fastpath import __version__
from fastpath.store.media_store import get_stream


class _Base:
    def __init__(self, face: Face):
        self.face = face

    def overview(self) -> dict:
        return figures.overview(self.face.streams(), self.face.live(), self.face.uptime(),
                                self.face.default_user_agent)


@protected()
class Stats(_Base):
    def on_get(self, req, resp):
        if wants_msgpack(req):
            resp.media = self.overview()
            return
        resp.content_type = falcon.MEDIA_JSON
        resp.data = figures.overview_json(self.face.stream_templates(), self.face.live(clients_of=False),
                                          self.face.uptime(), self.face.clients_json())


@protected()
class StatsStreams(_Base):
    def on_get(self, req, resp):
        list_streams(self.face, req, resp, "total_streams", total_first=True)


@protected()
class StatsClients(_Base):
    """``/stats/clients`` and ``/clients``: every viewer the workers track."""

    def on_get(self, req, resp):
        if wants_msgpack(req):
            clients = [client_view(c) for c in self.face.live().clients.values()]
            resp.media = {"total_clients": len(clients), "clients": clients}
            return
        array, total, _ = self.face.clients_json()
        resp.content_type = falcon.MEDIA_JSON
        resp.data = b'{"total_clients": %d, "clients": %s}' % (total, array)


@protected()
class StatsPerformance(_Base):
    def on_get(self, req, resp):
        view = self.face.live(clients_of=False)
        resp.media = figures.performance(self.face.streams(), view, self.face.rates)


@protected()
class StatsDetailed(_Base):
    def on_get(self, req, resp):
        streams = self.face.streams()
        view = self.face.live()
        stats = figures.overview(streams, view, self.face.uptime(), self.face.default_user_agent)
        perf = figures.performance(streams, view, self.face.rates)
        proxy_stats = {k: v for k, v in stats.items() if k not in ("streams", "clients")}
        resp.media = {
            "proxy_stats": proxy_stats,
            "connection_pool_stats": perf["connection_pool"],
            "failover_stats": perf["failover_stats"],
            "performance_metrics": perf["performance_metrics"],
            "error_stats": perf["error_stats"],
            "stream_count": stats["total_streams"],
            "client_count": stats["total_clients"],
            "streams": stats["streams"],
            "clients": stats["clients"],
            "timestamp": perf["timestamp"],
        }


@protected()
class ClientItem(_Base):
    def on_get(self, req, resp, client_id):
        c = self.face.live().clients.get(client_id)
        if c is None:
            raise not_found("Client not found")
        resp.media = client_view(c)


@protected()
class HlsClient(_Base):
    def on_delete(self, req, resp, stream_id, client_id):
        if get_stream(self.face.store, stream_id) is None:
            raise not_found("Stream not found")
        # An unknown viewer is a 200 with ``closed: 0``, as m3u-proxy answers (a manager that
        # disconnects a viewer which left a moment ago must not see an error).
        results = self.face.tell_workers("media_disconnect", {"stream_id": stream_id, "client_id": client_id})
        resp.media = {"message": f"Client {client_id} disconnected",
                      "closed": result_sum(results, "closed")}


def proxy_stats(face: Face) -> dict:
    _array, total, connected = face.clients_json()
    return figures.proxy_stats(face.stream_templates(), face.live(clients_of=False), face.uptime(),
                               total, connected)


class Health(_Base):
    """Asks the token like every route of the face (m3u-proxy does; a "test connection" with a
    wrong token must fail); tells only counts, never URLs or ids.  ``version`` is the m3u-proxy
    release whose API this face speaks (clients compare it); ours is ``fastpath_version``."""

    def on_get(self, req, resp):
        stats = proxy_stats(self.face)
        resp.media = {
            "status": "healthy",
            "root_path": root_path(self.face.media),
            "version": M3U_PROXY_VERSION,
            "uptime_seconds": stats["uptime_seconds"],
            "active_streams": stats["active_streams"],
            "active_clients": stats["active_clients"],
            "total_bytes_served": stats["total_bytes_served"],
            "stats": stats,
            "fastpath_version": __version__,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        }
        resp.status = falcon.HTTP_200
