"""Type stub of the compiled module fastpath.hy2.quic.udp_batch (fastpath/hy2/quic/udp_batch.pyx).

The names here are the module's public names (tests/test_stubs.py checks them).
"""
from typing import Any

class BatchEndpoint:
    def __init__(self, *args, **kwargs) -> None: ...
    def close(self) -> Any: ...
    dropped: Any
    gro: Any
    gso: Any
    local_address: Any
    obfs: Any
    on_batch: Any
    def send(self, datagrams) -> Any: ...
    sock: Any
    def start(self, loop) -> Any: ...
    stats: Any

class BatchStats:
    datagrams_in: Any
    datagrams_out: Any
    fallback_sends: Any
    gro_runs: Any
    gso_messages: Any
    recv_calls: Any
    send_calls: Any
    short_obfs: Any
    truncated: Any

def kernel_features(sock) -> Any: ...
