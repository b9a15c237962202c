"""HLS playlist reading and URI rewriting.

The rewriter changes URIs and nothing else: every other byte of the playlist (tags, attribute
order, number formatting such as ``#EXTINF:4.0,``, line endings) stays as the origin wrote it.
URIs are found where HLS puts them: URI lines after ``#EXTINF`` / ``#EXT-X-STREAM-INF``, and the
``URI="..."`` attribute of ``EXT-X-MEDIA``, ``EXT-X-I-FRAME-STREAM-INF``, ``EXT-X-MAP``,
``EXT-X-KEY``, ``EXT-X-SESSION-KEY``, ``EXT-X-PART``, ``EXT-X-PRELOAD-HINT``,
``EXT-X-RENDITION-REPORT`` and ``EXT-X-SESSION-DATA``.  Each is resolved against the playlist's
own URL; only http(s) results are handed to ``make_ref`` (which returns the node's URI for it),
anything else is left as it is.  Hostile input (binary, huge lines, broken attributes) is
answered with a best-effort result, never an exception.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

# What a URI is, for the node: another playlist, or bytes to relay (segment, key, init map).
PLAYLIST = "playlist"
SEGMENT = "segment"

# Tags carrying a URI attribute, and what that URI points to.
_URI_TAGS = {
    "#EXT-X-MEDIA": PLAYLIST,
    "#EXT-X-I-FRAME-STREAM-INF": PLAYLIST,
    "#EXT-X-RENDITION-REPORT": PLAYLIST,
    "#EXT-X-MAP": SEGMENT,
    "#EXT-X-KEY": SEGMENT,
    "#EXT-X-SESSION-KEY": SEGMENT,
    "#EXT-X-PART": SEGMENT,
    "#EXT-X-PRELOAD-HINT": SEGMENT,
    "#EXT-X-SESSION-DATA": SEGMENT,
}
# The slot prefix of playlist URIs: which variant/rendition of the master a URI is, so a viewer
# can be moved to the same one on another origin after a failover.
_SLOT_PREFIX = {"#EXT-X-STREAM-INF": "v", "#EXT-X-MEDIA": "m", "#EXT-X-I-FRAME-STREAM-INF": "i"}

_LINE_SPLIT = re.compile(r"(\r\n|\r|\n)")
_URI_ATTR = re.compile(r'(^|,)(\s*URI\s*=\s*")([^"]*)(")')

MakeRef = Callable[[str, str, str], "str | None"]


@dataclass
class PlaylistInfo:
    is_master: bool = False
    target_duration: float | None = None
    media_sequence: int = 0
    endlist: bool = False
    segments: list[str] = field(default_factory=list)     # absolute URLs, in order
    variants: list[str] = field(default_factory=list)     # slot order: v0, v1, ...
    renditions: list[str] = field(default_factory=list)   # m0, m1, ...
    iframes: list[str] = field(default_factory=list)      # i0, i1, ...

    @property
    def is_live(self) -> bool:
        return not self.is_master and not self.endlist

    def slot_url(self, slot: str) -> str | None:
        """The URL of variant ``v3`` / rendition ``m1`` / I-frame playlist ``i0`` of a master."""
        if len(slot) < 2 or not slot[1:].isdigit():
            return None
        table = {"v": self.variants, "m": self.renditions, "i": self.iframes}.get(slot[0])
        index = int(slot[1:])
        if table is None or index >= len(table):
            return None
        return table[index]

    @property
    def last_segment(self) -> str | None:
        return self.segments[-1] if self.segments else None


def resolve(base_url: str, uri: str) -> str | None:
    """``uri`` made absolute against ``base_url``; None unless the result is http(s)."""
    uri = uri.strip()
    if not uri or any(c in uri for c in "\x00\r\n"):
        return None
    try:
        absolute = urljoin(base_url, uri)
        parts = urlsplit(absolute)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    return absolute


def looks_like_playlist(data: bytes) -> bool:
    return data.lstrip(b"\xef\xbb\xbf \t\r\n")[:7] == b"#EXTM3U"


def rewrite_playlist(text: str, base_url: str, make_ref: MakeRef | None = None) -> tuple[str, PlaylistInfo]:
    """Rewrite every URI of ``text`` through ``make_ref(kind, absolute url, slot)`` and read
    the facts the relay needs (master or media, target duration, segments)."""
    info = PlaylistInfo()
    parts = _LINE_SPLIT.split(text)
    # Is it a master playlist?  Decided up front: a bare URI line means a variant there.
    info.is_master = "#EXT-X-STREAM-INF" in text
    pending: str | None = None        # the tag whose URI line comes next
    counters = {"v": 0, "m": 0, "i": 0}
    out: list[str] = []
    for i in range(0, len(parts), 2):
        line = parts[i]
        sep = parts[i + 1] if i + 1 < len(parts) else ""
        body = line.lstrip("\ufeff") if i == 0 else line
        stripped = body.strip()
        if not stripped:
            out.append(line + sep)
            continue
        if stripped.startswith("#"):
            name, _, value = stripped.partition(":")
            if name == "#EXTINF":
                pending = "#EXTINF"
            elif name == "#EXT-X-STREAM-INF":
                pending = "#EXT-X-STREAM-INF"
            elif name == "#EXT-X-TARGETDURATION":
                info.target_duration = _number(value, info.target_duration)
            elif name == "#EXT-X-MEDIA-SEQUENCE":
                seq = _number(value, None)
                if seq is not None and seq == int(seq):
                    info.media_sequence = int(seq)
            elif name == "#EXT-X-ENDLIST":
                info.endlist = True
            elif name in _URI_TAGS:
                line = _rewrite_attr(line, name, base_url, make_ref, info, counters)
            out.append(line + sep)
            continue
        # A URI line.
        kind = PLAYLIST if pending == "#EXT-X-STREAM-INF" or (pending is None and info.is_master) \
            else SEGMENT
        slot = ""
        if kind == PLAYLIST:
            slot = f"v{counters['v']}"
            counters["v"] += 1
        pending = None
        absolute = resolve(base_url, stripped)
        if absolute is None:
            out.append(line + sep)
            continue
        if kind == PLAYLIST:
            info.variants.append(absolute)
        else:
            info.segments.append(absolute)
        new = make_ref(kind, absolute, slot) if make_ref else None
        if new is None:
            out.append(line + sep)
        else:
            start = line.find(stripped)
            out.append(line[:start] + new + line[start + len(stripped):] + sep)
    return "".join(out), info


def _rewrite_attr(line: str, name: str, base_url: str, make_ref: MakeRef | None,
                  info: PlaylistInfo, counters: dict) -> str:
    colon = line.find(":")
    if colon < 0:
        return line
    attrs = line[colon + 1:]
    m = _URI_ATTR.search(attrs)
    if m is None:
        return line
    kind = _URI_TAGS[name]
    absolute = resolve(base_url, m.group(3))
    slot = ""
    prefix = _SLOT_PREFIX.get(name)
    if prefix is not None:
        slot = f"{prefix}{counters[prefix]}"
        counters[prefix] += 1
        if absolute is not None:
            (info.renditions if prefix == "m" else info.iframes).append(absolute)
    if absolute is None or make_ref is None:
        return line
    new = make_ref(kind, absolute, slot)
    if new is None:
        return line
    return line[:colon + 1] + attrs[:m.start(3)] + new + attrs[m.end(3):]


def _number(value: str, default):
    try:
        number = float(value.strip().split(",")[0])
    except (ValueError, IndexError):
        return default
    if number != number or number in (float("inf"), float("-inf")) or number < 0:
        return default
    return number


# Extensions kept on rewritten segment URIs (some players sniff the type from the path).
_SEGMENT_EXTENSIONS = {"ts", "m4s", "mp4", "m4a", "m4v", "aac", "ac3", "ec3", "mp3", "vtt",
                       "webvtt", "key", "bin", "cmfv", "cmfa", "fmp4", "mpegts", "jpg", "png",
                       "json"}


def segment_extension(url: str) -> str:
    """``.ts`` for ``https://o/x/seg12.ts?tok``; "" when unknown."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return ""
    name = path.rsplit("/", 1)[-1]
    if "." not in name:
        return ""
    ext = name.rsplit(".", 1)[-1].lower()
    return f".{ext}" if ext in _SEGMENT_EXTENSIONS else ""
