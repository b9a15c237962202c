"""Signed references to upstream URIs, as they appear in rewritten playlists.

A rewritten playlist must not carry raw upstream URLs in a form the node would fetch for
anyone (that would make the node an open proxy, and with ``file:`` URLs a file reader).  Each
URI the node took from one of a stream's own playlists becomes ``?r=<payload>.<mac>`` where the
MAC (HMAC-SHA256 under the node's key, truncated to 128 bits) binds the payload to the stream id
and to the kind of thing it points to.  Any worker can check a reference without shared state,
and references stay valid across restarts.  Only http(s) URLs are ever signed.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from urllib.parse import urlsplit

MAX_REF_CHARS = 8192


def is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


class BadRef(ValueError):
    """A reference that this node did not make (or not for this stream)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class RefSigner:
    def __init__(self, key: bytes):
        if len(key) < 16:
            raise ValueError("the reference key must have at least 16 bytes")
        self._key = key

    def _mac(self, stream_id: str, kind: str, payload: bytes) -> bytes:
        msg = b"%s\x00%s\x00%s" % (stream_id.encode(), kind.encode(), payload)
        return hmac.new(self._key, msg, hashlib.sha256).digest()[:16]

    def make(self, stream_id: str, kind: str, url: str, slot: str = "") -> str:
        payload = f"{slot}\n{url}".encode()
        return f"{_b64(payload)}.{_b64(self._mac(stream_id, kind, payload))}"

    def open(self, stream_id: str, kind: str, ref: str) -> tuple[str, str]:
        """(url, slot) of a reference made by ``make`` for this stream and kind."""
        if not ref or len(ref) > MAX_REF_CHARS or ref.count(".") != 1:
            raise BadRef("malformed reference")
        body, mac = ref.split(".")
        try:
            payload = _unb64(body)
            given = _unb64(mac)
        except (binascii.Error, ValueError):
            raise BadRef("malformed reference") from None
        if not hmac.compare_digest(given, self._mac(stream_id, kind, payload)):
            raise BadRef("reference not valid for this stream")
        try:
            slot, _, url = payload.decode().partition("\n")
        except UnicodeDecodeError:
            raise BadRef("malformed reference") from None
        if not is_http_url(url):
            raise BadRef("reference to a non-http(s) URL")
        return url, slot
