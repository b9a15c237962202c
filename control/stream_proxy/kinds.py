"""Stream types (from the URL, as m3u-proxy tells them) and the viewer URLs of a stream.

The data plane may correct the type from the content (``set_kind``); the store is the truth.
"""
from __future__ import annotations

from urllib.parse import urlsplit

# The m3u-proxy release whose API this face speaks: what clients read as ``version``.
M3U_PROXY_VERSION = "0.2.49"

VOD_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi")
VOD_PATHS = ("/movie/", "/series/", "/timeshift/")

# Store kind -> the ``stream_type`` names of m3u-proxy's stream listing.
TYPE_NAMES = {"hls": "HLS", "direct": "Live Continuous", "vod": "VOD", "transcode": "Transcoding"}


def kind_of(url: str) -> str:
    path = urlsplit(url).path.lower()
    if path.endswith(".m3u8"):
        return "hls"
    if path.endswith(VOD_EXTENSIONS) or any(p in path for p in VOD_PATHS):
        return "vod"
    return "direct"


def create_type(kind: str) -> str:
    """``stream_type`` of a create answer: m3u-proxy says only "hls" or "direct"."""
    return "hls" if kind == "hls" else "direct"


def endpoint(kind: str, stream_id: str) -> str:
    return f"/hls/{stream_id}/playlist.m3u8" if kind == "hls" else f"/stream/{stream_id}"


def public_base(media) -> str:
    """Where viewers reach the data plane: ``media.publicUrl``, else the media listener
    (a wildcard bind answers on loopback)."""
    if media is None:
        return "http://127.0.0.1:8085"
    if media.public_url:
        return media.public_url
    host, port = media.listen
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def root_path(media) -> str:
    """m3u-proxy's ``root_path``: the path prefix viewers' URLs live under (the path of
    ``media.publicUrl``; empty when the relay is reached at its root)."""
    url = getattr(media, "public_url", None) if media is not None else None
    return urlsplit(url).path.rstrip("/") if url else ""


def viewer_urls(media, kind: str, stream_id: str) -> dict:
    """Relative ``playlist_url``/``direct_url`` as m3u-proxy answers (a client prefixes its
    own base URL); ``viewer_url`` is the absolute URL on this node's media listener."""
    path = endpoint(kind, stream_id)
    return {
        "stream_endpoint": path,
        "playlist_url": path,  # m3u-proxy fills it for every type
        "direct_url": path,
        "viewer_url": public_base(media) + path,
    }
