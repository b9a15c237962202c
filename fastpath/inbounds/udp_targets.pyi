"""Type stub of the compiled module fastpath.inbounds.udp_targets (fastpath/inbounds/udp_targets.pyx).

The names here are the module's public names (tests/test_stubs.py checks them).
"""
from typing import Any

NEEDS_RESOLVING: int
OVER_BUDGET: int

class UdpTargets:
    def __init__(self, writer: Any = None, slot: int = -1) -> None: ...
    def attach(self, family: int, fd: int) -> None: ...
    def queue(self, payload: bytes, address: str) -> int: ...
    def flush(self) -> int: ...
    def recv(self, fd: int) -> list[tuple[str, bytes]]: ...
    pending: int
    over_budget: bool
    sent: int
    received: int
    dropped: int
    send_calls: int
    recv_calls: int
