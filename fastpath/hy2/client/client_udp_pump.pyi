"""Type stub of the compiled module fastpath.hy2.client.client_udp_pump (fastpath/hy2/client/client_udp_pump.pyx).

The names here are the module's public names (tests/test_stubs.py checks them).
"""
from typing import Any

BATCH: int
class LocalUdpRelay:
    def __init__(self, *args, **kwargs) -> None: ...
    def add_peer(self, *args, **kwargs) -> Any: ...
    def close(self, *args, **kwargs) -> Any: ...
    closed: Any
    decode_address: Any
    encode_address: Any
    fd: Any
    peers: Any
    def send_from(self, *args, **kwargs) -> Any: ...
    socks: Any
    def start(self, *args, **kwargs) -> Any: ...

class UdpPeer:
    def __init__(self, *args, **kwargs) -> None: ...
    def close(self, *args, **kwargs) -> Any: ...
    closed: Any
    conn: Any
    key: Any
    last_active: Any
    session_id: Any

def deliver_datagram(*args, **kwargs) -> Any: ...
