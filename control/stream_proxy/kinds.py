"""Stream types (from the URL, as m3u-proxy tells them) and the viewer URLs of a stream.

The data plane may correct the type from the content (``set_kind``); the store is the truth.
"""
from __future__ import annotations

from urllib.parse import urlsplit

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


def viewer_urls(media, kind: str, stream_id: str) -> dict:
    path = endpoint(kind, stream_id)
    base = public_base(media)
    return {
        "stream_endpoint": path,
        "playlist_url": base + path,  # m3u-proxy fills it for every type
        "direct_url": base + path,
    }
