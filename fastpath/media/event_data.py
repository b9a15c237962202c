"""The ``data`` of each webhook event, with the keys m3u-proxy 0.2.49 sends for it.

IPTV managers written for m3u-proxy read these keys; ours (``from_url``, ``bytes_in`` ...) stay
beside them, since receivers ignore keys they do not know.  One function per event, so the HLS
and the continuous relays announce the same shapes.
"""
from __future__ import annotations

from fastpath.store.media_store import MediaStream

# m3u-proxy's ``stream_type`` of a registration: hls, direct or transcoded.
_CREATE_TYPES = {"hls": "hls", "transcode": "transcoded"}


def create_type(kind: str) -> str:
    return _CREATE_TYPES.get(kind, "direct")


def stream_started(stream: MediaStream, url: str) -> dict:
    return {"primary_url": stream.url, "failover_urls": list(stream.failover_urls),
            "user_agent": stream.user_agent, "stream_type": create_type(stream.kind), "url": url}


def stream_stopped(stream: MediaStream, reason: str, *, bytes_in: int, bytes_served: int,
                   errors: int) -> dict:
    return {"reason": reason, "was_transcoded": stream.kind == "transcode",
            "bytes_in": bytes_in, "bytes_served": bytes_served, "errors": errors}


def client_connected(client_id: str, ip: str, agent: str, username: str | None, count: int) -> dict:
    """``stream_client_count``: the stream's viewers on this worker, this one included."""
    return {"client_id": client_id, "user_agent": agent, "ip_address": ip, "username": username,
            "stream_client_count": count}


def client_disconnected(client_id: str, bytes_served: int, segments: int, reason: str) -> dict:
    """``segments_served`` counts HLS segments (0 for a continuous stream's viewer, as on
    m3u-proxy)."""
    return {"client_id": client_id, "bytes_served": bytes_served, "segments_served": segments,
            "reason": reason}


def failover_triggered(stream: MediaStream, old: int, new: int, reason: str, clients: int,
                       attempt: int, old_url: str | None = None) -> dict:
    """``old_url`` when URL ``old`` is no longer in ``stream.urls`` (the resolver's earlier
    answer, replaced by its new one)."""
    urls = stream.urls
    if old_url is None:
        old_url = urls[old] if 0 <= old < len(urls) else ""
    return {"old_url": old_url, "new_url": urls[new], "failover_index": stream.failover_position(new),
            "attempt_number": attempt, "reason": reason, "client_count": clients,
            "from_url": old_url, "to_url": urls[new], "from_index": old, "url_index": new}


def stream_failed(url: str, error: str, error_type: str, index: int, has_failover: bool) -> dict:
    return {"error": error, "error_type": error_type, "no_failover": not has_failover,
            "url": url, "failover_index": max(index - 1, 0), "url_index": index}
