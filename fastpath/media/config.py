"""The ``media`` section of the node config: the stream relay's listener, timeouts and buffers.

Every key has a default, so a node without a ``media`` section relays on ``0.0.0.0:8085`` (the
port m3u-proxy users know).  Durations take numbers (seconds) or ``30s``-style strings; sizes
take integers (bytes) or ``16MiB``-style strings.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from fastpath.config.fields import ConfigError, Section

DEFAULT_LISTEN = "0.0.0.0:8085"
DEFAULT_USER_AGENT = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
                      "(KHTML, like Gecko) Chrome/124.0 Safari/537.36")

# Sizes of the fan-out ring and the segment cache, per stream and per worker.
DEFAULT_RING_BYTES = 16 * 1024 * 1024
DEFAULT_RING_CHUNKS = 2048
DEFAULT_CHUNK_BYTES = 32 * 1024
DEFAULT_SEGMENT_CACHE_BYTES = 128 * 1024 * 1024

SLOW_CLIENT_POLICIES = ("skip", "drop")


@dataclass
class MediaSettings:
    enabled: bool = True
    listen: tuple[str, int] = ("0.0.0.0", 8085)
    api_token: str | None = None
    public_url: str | None = None
    user_agent: str = DEFAULT_USER_AGENT
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    stall_timeout: float = 4.0
    client_timeout: float = 10.0
    linger: float = 5.0
    return_to_primary: bool = True
    primary_recheck: float = 15.0
    retry_backoff_max: float = 5.0
    ring_bytes: int = DEFAULT_RING_BYTES
    ring_chunks: int = DEFAULT_RING_CHUNKS
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    chunk_delay: float = 0.02
    join_backlog: float = 2.0
    slow_clients: str = "skip"
    # SO_SNDBUF of each live viewer's socket: without it the kernel autotunes a loopback or fast
    # viewer's buffer up to tcp_wmem's maximum (4 MiB here), megabytes of kernel memory per
    # viewer that also hide a stalled viewer from the ring (and so from slowClients) until
    # they fill.  0 keeps the kernel's autotuning.
    viewer_send_buffer: int = 512 * 1024
    segment_cache_bytes: int = DEFAULT_SEGMENT_CACHE_BYTES
    segment_cache_ttl: float = 120.0
    max_playlist_bytes: int = 4 * 1024 * 1024
    max_segment_bytes: int = 64 * 1024 * 1024
    hls_prefetch: bool = True
    trust_forwarded_for: bool = False
    trusted_proxies: list = field(default_factory=list)   # ip_network objects
    ffmpeg: str = "ffmpeg"
    transcode_profiles: dict[str, str] = field(default_factory=dict)
    webhook_queue: int = 1000
    # Outbound rule (fastpath/media/outbound.py): private ranges, and networks let through
    # even though they are loopback, private or reserved (ip_network objects).
    allow_private_upstreams: bool = False
    allow_upstream_networks: list = field(default_factory=list)
    # Transcode templates given in API requests (the allow-list of transcode.py applies).
    custom_transcode_templates: bool = False

    @property
    def listen_text(self) -> str:
        host, port = self.listen
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgKMG]?)(i?)([bB]?)\s*$")


def parse_size(value) -> int:
    """Bytes from an integer or ``512k``, ``16MB``, ``16MiB`` (k/M/G are 1024-based either way:
    these are buffer sizes, not link rates)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 16MiB, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a size such as 16MiB, got {value!r}")
    m = _SIZE.match(value)
    if not m:
        raise ValueError(f"expected a size such as 16MiB, got {value!r}")
    scale = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def _size(section: Section, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = section._get(name)
    if raw is None:
        return default
    try:
        value = parse_size(raw)
    except ValueError as exc:
        raise ConfigError(section.key(name), str(exc)) from None
    if not minimum <= value <= maximum:
        raise ConfigError(section.key(name), f"must be from {minimum} to {maximum} bytes; got {value}")
    return value


def _seconds(section: Section, name: str, default: float, minimum: float = 0.0,
             maximum: float = 86400.0) -> float:
    value = section.duration(name, default)
    if not minimum <= value <= maximum:
        raise ConfigError(section.key(name), f"must be from {minimum:g}s to {maximum:g}s; got {value:g}s")
    return value


def _networks(section: Section, name: str) -> list:
    """A list of addresses or CIDR networks (one string is a list of one)."""
    raw = section._get(name)
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise ConfigError(section.key(name), "expected a list of addresses or networks")
    out = []
    for item in raw:
        try:
            out.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            raise ConfigError(section.key(name), f"not an address or network: {item!r}") from None
    return out


def parse_media_config(raw) -> MediaSettings:
    """Validate the ``media`` section (None = all defaults)."""
    s = Section(raw, "media")
    out = MediaSettings()
    out.enabled = s.bool("enabled", True)
    out.listen = s.listen("listen", DEFAULT_LISTEN)
    out.api_token = s.str("apiToken") or None
    public_url = s.str("publicUrl")
    if public_url is not None:
        if not re.match(r"^https?://[^\s/]+", public_url):
            raise ConfigError(s.key("publicUrl"), f"expected an http(s) base URL, got {public_url!r}")
        out.public_url = public_url.rstrip("/")
    out.user_agent = s.str("userAgent", DEFAULT_USER_AGENT)
    out.connect_timeout = _seconds(s, "connectTimeout", 10.0, 0.1, 300)
    out.read_timeout = _seconds(s, "readTimeout", 30.0, 0.1, 3600)
    out.stall_timeout = _seconds(s, "stallTimeout", 4.0, 0.2, 600)
    out.client_timeout = _seconds(s, "clientTimeout", 10.0, 0.5, 3600)
    out.linger = _seconds(s, "lingerTimeout", 5.0, 0.0, 3600)
    out.return_to_primary = s.bool("returnToPrimary", True)
    out.primary_recheck = _seconds(s, "primaryRecheck", 15.0, 0.2, 86400)
    out.retry_backoff_max = _seconds(s, "retryBackoffMax", 5.0, 0.1, 600)
    out.ring_bytes = _size(s, "ringBytes", DEFAULT_RING_BYTES, 64 * 1024, 1024 ** 3)
    out.ring_chunks = s.int("ringChunks", DEFAULT_RING_CHUNKS, minimum=16, maximum=1 << 20)
    out.chunk_bytes = _size(s, "chunkBytes", DEFAULT_CHUNK_BYTES, 188, 4 * 1024 * 1024)
    out.chunk_delay = _seconds(s, "chunkDelay", 0.02, 0.0, 1.0)
    out.join_backlog = _seconds(s, "joinBacklog", 2.0, 0.0, 600)
    out.slow_clients = s.str("slowClients", "skip", choices=SLOW_CLIENT_POLICIES)
    out.viewer_send_buffer = _size(s, "viewerSendBuffer", 512 * 1024, 0, 64 * 1024 ** 2)
    if 0 < out.viewer_send_buffer < 4096:
        raise ConfigError(s.key("viewerSendBuffer"),
                          "must be 0 (the kernel's autotuning) or at least 4096 bytes")
    out.segment_cache_bytes = _size(s, "segmentCacheBytes", DEFAULT_SEGMENT_CACHE_BYTES,
                                    1024 * 1024, 64 * 1024 ** 3)
    out.segment_cache_ttl = _seconds(s, "segmentCacheTtl", 120.0, 1.0, 86400)
    out.max_playlist_bytes = _size(s, "maxPlaylistBytes", 4 * 1024 * 1024, 1024, 256 * 1024 * 1024)
    out.max_segment_bytes = _size(s, "maxSegmentBytes", 64 * 1024 * 1024, 1024, 4 * 1024 ** 3)
    out.hls_prefetch = s.bool("hlsPrefetch", True)
    out.trust_forwarded_for = s.bool("trustForwardedFor", False)
    out.trusted_proxies = _networks(s, "trustedProxies")
    out.allow_private_upstreams = s.bool("allowPrivateUpstreams", False)
    out.allow_upstream_networks = _networks(s, "allowUpstreamNetworks")
    out.custom_transcode_templates = s.bool("customTranscodeTemplates", False)
    out.ffmpeg = s.str("ffmpeg", "ffmpeg")
    profiles = s.mapping("transcodeProfiles")
    for name, template in profiles.items():
        if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_.\-]{1,40}$", name):
            raise ConfigError(s.key("transcodeProfiles"), f"bad profile name {name!r}")
        if not isinstance(template, str) or not template.strip():
            raise ConfigError(f"{s.key('transcodeProfiles')}.{name}",
                              "expected the FFmpeg arguments as one string")
        try:
            from fastpath.store.media_profiles import check_template
            check_template(template)
        except ValueError as exc:
            raise ConfigError(f"{s.key('transcodeProfiles')}.{name}", str(exc)) from None
        out.transcode_profiles[name] = template
    out.webhook_queue = s.int("webhookQueue", 1000, minimum=1, maximum=1_000_000)
    s.finish()
    return out
