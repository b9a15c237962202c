"""``GET /`` (status), ``/info``, ``/transcode/profiles`` and ``POST /test-connection``: what an
IPTV manager asks of m3u-proxy before it registers anything (is it up, which version, which
transcoding profiles, can it reach a URL).

The shapes are m3u-proxy 0.2.49's; the values are this node's.  Where m3u-proxy reports a
feature this node does not have (Redis pooling, hardware encoders) the keys are there with the
values m3u-proxy gives when the feature is off, so a client's parsing never breaks.
"""
from __future__ import annotations

import asyncio
import logging
import subprocess
import threading

import aiohttp

from fastpath.control.stream_proxy import bodies as b
from fastpath.control.stream_proxy.face import Face
from fastpath.control.stream_proxy.kinds import M3U_PROXY_VERSION
from fastpath.control.stream_proxy.monitor import proxy_stats
from fastpath import __version__
from fastpath.media import outbound
from fastpath.store import media_profiles as transcode

log = logging.getLogger("fastpath.control.stream_proxy")

# Our own one-line descriptions of the built-in profiles.
DESCRIPTIONS = {
    "default": "H.264 and AAC at a fixed bit rate, MPEG-TS",
    "hq": "H.264 at constant quality (CRF), AAC 192k, MPEG-TS",
    "lowlatency": "H.264 tuned for zero latency, 1M, AAC 96k, MPEG-TS",
    "720p": "Scaled to 1280x720, H.264 2500k, MPEG-TS",
    "1080p": "Scaled to 1920x1080, H.264 5000k, AAC 192k, MPEG-TS",
    "hevc": "H.265 (HEVC) at a fixed bit rate, MPEG-TS",
    "audio": "Audio only, AAC 192k (ADTS)",
}
# The variables m3u-proxy lists as defaults, with this node's values (our profiles write
# MPEG-TS, so ``format`` is mpegts where m3u-proxy says mp4).
DEFAULT_VARIABLES = {"input_url": "", "output_args": "", "video_bitrate": "2M",
                     "audio_bitrate": "128k", "format": "mpegts", "crf": "23"}
TEST_TIMEOUT = 5.0

_ffmpeg_lock = threading.Lock()
_ffmpeg_versions: dict[str, str | None] = {}


def ffmpeg_version(ffmpeg: str) -> str | None:
    """The first line of ``ffmpeg -version`` (asked once per binary), None when it does not run."""
    with _ffmpeg_lock:
        if ffmpeg not in _ffmpeg_versions:
            try:
                out = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, timeout=5)
                line = out.stdout.split("\n", 1)[0].strip() if out.returncode == 0 else ""
                _ffmpeg_versions[ffmpeg] = line or None
            except (OSError, subprocess.SubprocessError):
                _ffmpeg_versions[ffmpeg] = None
        return _ffmpeg_versions[ffmpeg]


def profiles(media) -> dict[str, tuple[str, str]]:
    """name -> (description, template), built-in and configured (``media.transcodeProfiles``)."""
    extra = getattr(media, "transcode_profiles", None) or {}
    out = {}
    for name in transcode.profile_names(extra):
        template = transcode.profile_template(name, extra)
        out[name] = (DESCRIPTIONS.get(name) if name not in extra else None) or name, template
    return out


class Root:
    """m3u-proxy's status answer at ``/`` (shared with the Traffic Stats index: see
    ``control/shared_root.py``)."""

    def __init__(self, face: Face):
        self.face = face

    def on_get(self, req, resp):
        stats = proxy_stats(self.face)
        resp.media = {"status": "running", "message": "m3u proxy is running",
                      "version": M3U_PROXY_VERSION, "uptime": stats["uptime_seconds"],
                      "stats": stats, "fastpath_version": __version__}


class Info:
    def __init__(self, face: Face):
        self.face = face

    def on_get(self, req, resp):
        media = self.face.media
        workers = int(self.face.node.config.workers or 1)
        resp.media = {
            "version": M3U_PROXY_VERSION,
            "fastpath_version": __version__,
            "ffmpeg_version": ffmpeg_version(getattr(media, "ffmpeg", "ffmpeg")),
            "hardware_acceleration": {"enabled": False, "type": None, "device": None, "ffmpeg_args": []},
            # No Redis here: the state store and shared memory do what m3u-proxy's pooling does.
            "redis": {"enabled": False, "pooling_enabled": False, "host": None, "port": None,
                      "password": None, "db": None, "max_clients_per_stream": None,
                      "stream_timeout": None, "sharing_strategy": None},
            "transcoding": {"enabled": True,
                            "profiles": {n: d for n, (d, _t) in profiles(media).items()}},
            "configuration": {
                "default_user_agent": self.face.default_user_agent,
                "client_timeout": getattr(media, "client_timeout", 10.0),
                "stream_timeout": getattr(media, "stall_timeout", 4.0),
                "cleanup_interval": 1,
                "max_retries": None,
            },
            "worker": {"worker_id": "single" if workers == 1 else f"{workers} workers",
                       "heartbeat_interval": 1, "multi_worker_mode": workers > 1},
        }


class TranscodeProfiles:
    def __init__(self, face: Face):
        self.face = face

    def on_get(self, req, resp):
        resp.media = {
            "profiles": [{"name": n, "description": d, "parameters": t}
                         for n, (d, t) in profiles(self.face.media).items()],
            "hardware_acceleration": {"available": False, "type": None},
            "default_variables": dict(DEFAULT_VARIABLES),
        }


async def _probe(url: str, policy: outbound.OutboundPolicy) -> dict:
    timeout = aiohttp.ClientTimeout(total=TEST_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout, connector=outbound.connector(policy),
                                     trust_env=False) as session:
        policy.check_literal(url)
        async with session.get(url, allow_redirects=False) as resp:
            return {"status_code": resp.status}


class TestConnection:
    """Whether the node reaches ``url`` (GET, 5 s, an answer of 200 is a success).  Through the
    relay's outbound rule like every connection the node makes, so this route cannot probe
    addresses the relay would refuse; the answer says refused, nothing more."""

    def __init__(self, face: Face):
        self.face = face

    def on_post(self, req, resp):
        body = b.json_body(req)
        url = b.http_url(b.required(body, "url"), "url").rstrip("/")
        why = self.face.outbound.refusal_for_url(url)
        if why is not None:
            resp.media = {"success": False, "message": f"Connection refused by the node's outbound rule: {why}",
                          "error": "refused", "url_tested": url}
            return
        try:
            got = asyncio.run(_probe(url, self.face.outbound))
        except TimeoutError:
            resp.media = {"success": False, "message": f"Connection timed out after {TEST_TIMEOUT:g} seconds",
                          "error": "timeout", "url_tested": url}
            return
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            refused = outbound.refused_cause(exc)
            kind = "refused" if refused is not None else type(exc).__name__
            log.info("test-connection to %s failed: %s", url, refused or exc)
            resp.media = {"success": False, "message": f"Connection failed: Unable to connect to {url}",
                          "error": kind, "url_tested": url}
            return
        ok = got["status_code"] == 200
        resp.media = {"success": ok,
                      "message": f"Successfully connected to {url}" if ok else "URL returned non-200 status code",
                      "status_code": got["status_code"], "url_tested": url}
