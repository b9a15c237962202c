"""Stateless resets (RFC 9000 §10.3): a dead connection's client learns at once.

When a worker restarts, the packets of the connections it held keep arriving on its socket
(the supervisor hands the same socket to the new process), but nobody knows their state any
more.  Without an answer the client would wait for its idle timeout (30 s by default) before
it reconnects.  A stateless reset ends such a connection on the client's next packet.

The token of every connection ID this node issues is derived from a node-wide key
(``HMAC-SHA256(key, cid)``, truncated to 16 bytes), so a process that never saw the connection
can still produce the token the client was given for it.  aioquic draws its tokens at random
per connection ID; ``apply_tokens`` replaces them before any is sent.

aioquic does not recognise a stateless reset it receives; our client checks for one itself
(``fastpath.hy2.client.client.ClientConnection.on_batch``).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import time

TOKEN_SIZE = 16
# RFC 9000 §10.3: at least 5 unpredictable bytes after the first, then the token; and smaller
# than the packet that triggered it, so two endpoints can never reset each other forever.
MIN_RESET_SIZE = 21
MAX_RESET_SIZE = 43
# Resets are cheap to trigger with spoofed packets; answer this many per second at most.
RESETS_PER_SECOND = 1000


def reset_token(key: bytes, cid: bytes) -> bytes:
    return hmac.new(key, cid, hashlib.sha256).digest()[:TOKEN_SIZE]


def apply_tokens(key: bytes, host_cids) -> None:
    """Give each of our connection IDs (aioquic ``QuicConnectionId`` records) its derived
    token.  Idempotent; called after aioquic creates IDs and before they are announced."""
    for record in host_cids:
        record.stateless_reset_token = reset_token(key, record.cid)


class StatelessResetter:
    """Builds resets for packets that name a connection ID this process does not know."""

    def __init__(self, key: bytes | None, per_second: int = RESETS_PER_SECOND) -> None:
        self.key = key or os.urandom(32)
        self.per_second = per_second
        self._window = 0
        self._sent = 0
        self.sent_total = 0

    def reset_for(self, data: bytes, cid: bytes) -> bytes | None:
        """The reset to send for the short-header packet ``data`` addressed to ``cid``, or
        None (too small to answer without the risk of a loop, or over the rate limit)."""
        size = min(len(data) - 1, MAX_RESET_SIZE)
        if size < MIN_RESET_SIZE or not cid:
            return None
        window = int(time.monotonic())
        if window != self._window:
            self._window, self._sent = window, 0
        if self._sent >= self.per_second:
            return None
        self._sent += 1
        self.sent_total += 1
        filler = bytearray(os.urandom(size - TOKEN_SIZE))
        # A short header's first bits: 0 (header form), 1 (fixed bit), the rest unpredictable.
        filler[0] = 0x40 | (filler[0] & 0x3F)
        return bytes(filler) + reset_token(self.key, cid)

