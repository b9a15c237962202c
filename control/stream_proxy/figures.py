"""The figures of ``/stats``, ``/stats/detailed`` and ``/stats/performance``.

m3u-proxy answers the last two with empty objects; here they are computed from the same slot
scan: per-stream throughput, upstream connections and their state, cache hit rate, fan-out,
failovers and errors.  Throughput is the rate between two reads of the counters at least a
second apart (kept by this control process), or the average since the relay started when
there is no earlier read yet.
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque

from fastpath.control.stream_proxy import stream_json
from fastpath.control.stream_proxy.kinds import TYPE_NAMES
from fastpath.control.stream_proxy.live import LiveView
from fastpath.control.stream_proxy.views import (
    client_view,
    current_index,
    iso,
    stream_figures,
    stream_view,
)

MIN_WINDOW = 1.0
MAX_WINDOW = 60.0


class Rates:
    """Recent byte rates per stream from successive counter reads."""

    def __init__(self):
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, dict]] = deque()

    def rates(self, now: float, totals: dict[str, tuple[int, int]]) -> dict[str, tuple[float, float, float]]:
        """``{stream: (in_bps, out_bps, window_seconds)}`` for streams with an earlier read."""
        with self._lock:
            while self._samples and now - self._samples[0][0] > MAX_WINDOW:
                self._samples.popleft()
            base = None
            for t, snap in reversed(self._samples):
                if now - t >= MIN_WINDOW:
                    base = (t, snap)
                    break
            if not self._samples or now - self._samples[-1][0] >= MIN_WINDOW:
                self._samples.append((now, dict(totals)))
        out = {}
        if base is None:
            return out
        t0, snap = base
        dt = now - t0
        for sid, (b_in, b_out) in totals.items():
            old = snap.get(sid)
            if old is None or b_in < old[0] or b_out < old[1]:
                continue
            out[sid] = ((b_in - old[0]) * 8 / dt, (b_out - old[1]) * 8 / dt, dt)
        return out


def overview(streams, view: LiveView, uptime: float, default_agent: str | None = None) -> dict:
    """``GET /stats``: totals plus every stream and client object."""
    stream_objs = [stream_view(s, view, default_agent) for s in streams]
    clients = [client_view(c) for c in view.clients.values()]
    return {
        "total_streams": len(stream_objs),
        "active_streams": sum(1 for s in stream_objs if s["relaying"]),
        "total_clients": len(clients),
        "active_clients": sum(1 for c in clients if c["is_connected"]),
        "total_bytes_served": sum(s["total_bytes_served"] for s in stream_objs),
        "total_segments_served": sum(s["total_segments_served"] for s in stream_objs),
        "uptime_seconds": int(uptime),
        "streams": stream_objs,
        "clients": clients,
    }


def overview_json(templates, view: LiveView, uptime: float, clients: tuple[bytes, int, int]) -> bytes:
    """``GET /stats`` as JSON bytes: the same answer as ``overview``, with the streams from
    their templates (``stream_json``) and the viewers' array rendered in C (``clients_json``),
    so no per-viewer or per-stream dict is built."""
    array, total, active_clients = clients
    streams, head = _proxy_stats(templates, view, uptime, total, active_clients)
    head = json.dumps(head)
    return b"".join((head[:-1].encode(), b', "streams": ', streams.encode(), b', "clients": ', array, b"}"))


def _proxy_stats(templates, view: LiveView, uptime: float, clients: int, connected: int):
    streams, active, served, segments = stream_json.streams_array(templates, view)
    return streams, {
        "total_streams": len(templates),
        "active_streams": active,
        "total_clients": clients,
        "active_clients": connected,
        "total_bytes_served": served,
        "total_segments_served": segments,
        # Whole seconds, as m3u-proxy's clients read it (its count wraps daily; ours does not).
        "uptime_seconds": int(uptime),
    }


def proxy_stats(templates, view: LiveView, uptime: float, clients: int, connected: int) -> dict:
    """m3u-proxy's ``proxy_stats`` (the head of ``/stats``, ``stats`` of ``/`` and ``/health``)."""
    return _proxy_stats(templates, view, uptime, clients, connected)[1]


def health_counts(streams, view: LiveView) -> dict:
    """The counts of ``/health`` (same meaning as in ``/stats``) without building a single
    stream or client object: a probe stays cheap at 10k viewers."""
    active = served = 0
    for s in streams:
        live = view.streams.get(s.id)
        if view.connected.get(s.id) or (live is not None and live.reading):
            active += 1
        served += s.bytes_served + (live.bytes_out if live is not None else 0)
    return {"active_streams": active,
            "active_clients": sum(view.connected.values()),
            "total_bytes_served": served}


def _bps(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def performance(streams, view: LiveView, rates: Rates, now: float | None = None) -> dict:
    """Per-stream and total performance figures, and the failover and error breakdowns."""
    now = time.time() if now is None else now
    figs = {s.id: stream_figures(s, view.streams.get(s.id)) for s in streams}
    recent = rates.rates(now, {sid: (f["bytes_in"], f["bytes_out"]) for sid, f in figs.items()})
    per_stream = []
    pool = {"upstream_connections": 0, "connecting": 0, "idle": 0, "relays": 0}
    for s in streams:
        live = view.streams.get(s.id)
        f = figs[s.id]
        connected = view.connected_count(s.id)
        rate = recent.get(s.id)
        avg_in = avg_out = None
        if live is not None and live.created_ns:
            age = max(now - live.created_ns / 1e9, 1e-3)
            avg_in, avg_out = live.bytes_in * 8 / age, live.bytes_out * 8 / age
        if live is not None:
            # One relay per worker: each reading one is one upstream connection.
            pool["relays"] += live.workers
            pool["upstream_connections"] += live.slot_states.get("reading", 0)
            pool["connecting"] += live.slot_states.get("connecting", 0)
            pool["idle"] += live.slot_states.get("idle", 0)
        hits = live.cache_hits if live else 0
        seg_live = live.segments if live else 0
        per_stream.append({
            "stream_id": s.id,
            "stream_type": TYPE_NAMES.get(s.kind, s.kind),
            "upstream_state": live.upstream_state if live else "idle",
            "current_url": s.urls[current_index(s, live)],
            "upstream_connections": live.slot_states.get("reading", 0) if live else 0,
            "relays": live.workers if live else 0,
            "active_clients": connected,
            "bytes_in": f["bytes_in"],
            "bytes_out": f["bytes_out"],
            "throughput_in_bps": _bps(rate[0] if rate else avg_in),
            "throughput_out_bps": _bps(rate[1] if rate else avg_out),
            "average_in_bps": _bps(avg_in),
            "average_out_bps": _bps(avg_out),
            "throughput_window_seconds": round(rate[2], 3) if rate else None,
            "fanout_ratio": round(live.bytes_out / live.bytes_in, 3) if live and live.bytes_in else None,
            "segments_served": f["segments"],
            "cache_hits": hits,
            "cache_hit_rate": round(hits / seg_live, 4) if seg_live else None,
            "error_count": f["errors"],
            "failover_attempts": f["failovers"],
            "last_failover_time": iso(f["last_failover"]),
            "seconds_since_activity": round(now - live.last_active_ns / 1e9, 3)
            if live and live.last_active_ns else None,
        })
    total_hits = sum(p["cache_hits"] for p in per_stream)
    total_seg_live = sum(v.segments for v in view.streams.values())
    metrics = {
        "throughput_in_bps": _bps(sum(p["throughput_in_bps"] or 0 for p in per_stream)),
        "throughput_out_bps": _bps(sum(p["throughput_out_bps"] or 0 for p in per_stream)),
        "total_bytes_in": sum(p["bytes_in"] for p in per_stream),
        "total_bytes_out": sum(p["bytes_out"] for p in per_stream),
        "total_segments_served": sum(p["segments_served"] for p in per_stream),
        "cache_hits": total_hits,
        "cache_hit_rate": round(total_hits / total_seg_live, 4) if total_seg_live else None,
        "active_clients": sum(view.connected.values()),
        "streams": per_stream,
    }
    failed_over = [p for p in per_stream if p["failover_attempts"]]
    failover_stats = {
        "total_failovers": sum(p["failover_attempts"] for p in per_stream),
        "streams_with_failover": len(failed_over),
        "streams_on_backup": sum(1 for s in streams if current_index(s, view.streams.get(s.id)) != 0),
        "by_stream": [{"stream_id": p["stream_id"], "failover_attempts": p["failover_attempts"],
                       "current_url": p["current_url"], "last_failover_time": p["last_failover_time"]}
                      for p in failed_over],
    }
    with_errors = [p for p in per_stream if p["error_count"]]
    error_stats = {
        "total_errors": sum(p["error_count"] for p in per_stream),
        "streams_with_errors": len(with_errors),
        "by_stream": [{"stream_id": p["stream_id"], "error_count": p["error_count"]} for p in with_errors],
    }
    return {"connection_pool": pool, "performance_metrics": metrics,
            "failover_stats": failover_stats, "error_stats": error_stats,
            "timestamp": iso(now)}
