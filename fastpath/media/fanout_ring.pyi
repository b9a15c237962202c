"""Type stub of the compiled module fastpath.media.fanout_ring (fastpath/media/fanout_ring.pyx).

The names here are the module's public names (tests/test_stubs.py checks them).
"""
from typing import Any

BLOCKED: int
DEAD: int
FREE: int
class FanoutRing:
    def add_client(self, fd, slot = -1, join = True) -> Any: ...
    aligned: Any
    def blocked_longer_than(self, seconds) -> Any: ...
    bytes_in: Any
    bytes_out: Any
    capacity: Any
    def chunk_flags(self) -> Any: ...
    chunks_in: Any
    def clear(self) -> Any: ...
    def client_info(self, cid) -> Any: ...
    clients_count: Any
    def clients_sent(self) -> Any: ...
    drop_slow: Any
    drops: Any
    head: Any
    held_bytes: Any
    nlive: Any
    def push(self, chunk, flags = 0) -> Any: ...
    def remove_client(self, cid) -> Any: ...
    def resume(self, cid) -> Any: ...
    sends: Any
    def set_aligned(self, aligned) -> Any: ...
    skips: Any
    tail: Any

LIVE: int
STATE_NAMES: dict
