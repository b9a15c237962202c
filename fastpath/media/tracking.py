"""Streams and viewers in the worker's shared-memory shard, as the control face reads them.

One ``KIND_MEDIA_STREAM`` slot per active stream of this worker and one ``KIND_MEDIA_CLIENT``
slot per viewer, laid out as the media contract says (text fields, extra[0..3], states).  The
control face never asks a worker for figures: it scans these slots.  Viewer identity (the
``client_id``) is an HMAC of who the viewer is, so repeated HLS requests of one viewer land on
one slot in every worker.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import time

from fastpath.shm import (
    KIND_MEDIA_CLIENT,
    KIND_MEDIA_STREAM,
    STATE_CLOSED,
    STATE_CONNECT,
    STATE_ESTAB,
)

log = logging.getLogger("fastpath.media.tracking")

X_URL_INDEX, X_FAILOVERS, X_LAST_FAILOVER_NS, X_CACHE_HITS = range(4)


def _cut(text: str, limit: int) -> str:
    """``text`` cut so its UTF-8 form fits ``limit`` bytes (the slot's field)."""
    data = text.encode("utf-8", "replace")[:limit]
    return data.decode("utf-8", "ignore")


def client_identity(settings, peer: str, headers: dict[str, str], query: dict[str, str]) -> tuple[str, str, str]:
    """(ip, username, user agent) of a request: the peer address, or the first
    ``X-Forwarded-For`` entry when the peer is a trusted proxy."""
    ip = peer
    forwarded = headers.get("x-forwarded-for", "")
    if forwarded and _trusted(settings, peer):
        first = forwarded.split(",")[0].strip()
        try:
            ip = str(ipaddress.ip_address(first))
        except ValueError:
            pass
    username = headers.get("x-username") or query.get("username") or ""
    return ip, username[:64], headers.get("user-agent", "")[:256]


def _trusted(settings, peer: str) -> bool:
    if settings.trust_forwarded_for:
        return True
    if not settings.trusted_proxies:
        return False
    try:
        addr = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(addr in net for net in settings.trusted_proxies)


def make_client_id(secret: bytes, stream_id: str, ip: str, user_agent: str, username: str,
                   connection: str = "") -> str:
    """The viewer's id.  An HLS viewer is one session of many requests, so its id is who it
    is (the same on every worker).  A continuous stream's viewer is one connection: three
    players on one host with one user agent are three viewers (m3u-proxy merges them into
    one), so those ids also take a ``connection`` token unique to the connection."""
    msg = f"{stream_id}\x00{ip}\x00{user_agent}\x00{username}\x00{connection}".encode("utf-8", "replace")
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()[:16]


class StreamSlot:
    """The shared-memory record of one stream while this worker relays it."""

    def __init__(self, writer, stream_id: str, kind: str, url: str, index: int):
        self.writer = writer
        self.slot = writer.open(KIND_MEDIA_STREAM, stream_id, text_a=kind, text_b=_cut(url, 127),
                                state=STATE_CONNECT)
        self.failovers = 0
        self.cache_hits = 0
        self.closed = False
        writer.set_extra(self.slot, X_URL_INDEX, index)

    def connecting(self) -> None:
        self.writer.set_state(self.slot, STATE_CONNECT)

    def reading(self) -> None:
        self.writer.set_state(self.slot, STATE_ESTAB)

    def idle(self) -> None:
        self.writer.set_state(self.slot, STATE_CLOSED)

    def set_url(self, url: str, index: int) -> None:
        self.writer.set_text(self.slot, text_b=_cut(url, 127))
        self.writer.set_extra(self.slot, X_URL_INDEX, index)

    def upstream_bytes(self, n: int) -> None:
        self.writer.add_counts(self.slot, 0, n, 0, 0)

    def error(self) -> None:
        self.writer.add_counts(self.slot, 0, 0, 0, 1)

    def failover(self) -> None:
        if self.closed:           # announced after the relay ended: the slot may be reused
            return
        self.failovers += 1
        self.writer.set_extra(self.slot, X_FAILOVERS, self.failovers)
        self.writer.set_extra(self.slot, X_LAST_FAILOVER_NS, time.time_ns())

    def cache_hit(self) -> None:
        self.cache_hits += 1
        self.writer.set_extra(self.slot, X_CACHE_HITS, self.cache_hits)

    def served(self, n: int, segments: int = 0) -> None:
        """Bytes served without a viewer slot (e.g. a HEAD, a playlist)."""
        self.writer.add_counts(self.slot, n, 0, segments, 0)

    def read(self) -> dict:
        return self.writer.read(self.slot)

    def close(self) -> dict:
        record = self.writer.read(self.slot)
        self.closed = True
        self.writer.close(self.slot)
        return record


class ClientSlot:
    """One viewer: its identity in text fields, bytes served counted on it and its stream."""

    def __init__(self, writer, stream: StreamSlot, stream_id: str, client_id: str, ip: str,
                 username: str, user_agent: str):
        self.writer = writer
        self.client_id = client_id
        self.ip, self.username, self.user_agent = ip, username, user_agent
        self.slot = writer.open(KIND_MEDIA_CLIENT, client_id, conn_slot=stream.slot,
                                text_a=stream_id, text_b=_cut(f"{ip}\t{username}\t{user_agent}", 127),
                                state=STATE_ESTAB)
        self.last_seen = time.monotonic()
        self.closed = False
        self.packets = 0          # writes (segments for HLS viewers), known once closed

    def served(self, n: int, segments: int = 0) -> None:
        self.last_seen = time.monotonic()
        self.writer.add_counts(self.slot, n, 0, segments, 0)

    def seen(self) -> None:
        self.last_seen = time.monotonic()
        self.writer.add_counts(self.slot, 0, 0, 0, 0)

    def bytes_served(self) -> int:
        return self.writer.read(self.slot)["tx"]

    def close(self) -> int:
        """Free the slot; returns the bytes it was served."""
        if self.closed:
            return 0
        self.closed = True
        record = self.writer.read(self.slot)
        sent, self.packets = record["tx"], record["tx_packets"]
        self.writer.close(self.slot)
        return sent
