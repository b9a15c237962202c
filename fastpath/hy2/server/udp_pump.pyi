"""Type stub of the compiled module fastpath.hy2.server.udp_pump (fastpath/hy2/server/udp_pump.pyx).

The names here are the module's public names (tests/test_stubs.py checks them).
"""
from typing import Any

BATCH: int
MAX_NAMES: int
MAX_QUEUED_DATAGRAMS: int
MAX_TARGETS: int
class ClientDatagrams:
    def __init__(self, *args, **kwargs) -> None: ...
    def __call__(self, *args, **kwargs) -> Any: ...

class UdpPump:
    def __init__(self, *args, **kwargs) -> None: ...
    def close(self, *args, **kwargs) -> Any: ...
    closed: Any
    def send(self, *args, **kwargs) -> Any: ...
    session: Any
    session_id: Any
    slot: Any

def datagram_from_client(*args, **kwargs) -> Any: ...
