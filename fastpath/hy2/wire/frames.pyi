"""Type stub of the compiled module fastpath.hy2.wire.frames (fastpath/hy2/wire/frames.pyx).

The names here are the module's public names (tests/test_stubs.py checks them).
"""
from typing import Any

class Defragmenter:
    def feed(self, *args, **kwargs) -> Any: ...
    max_packet_size: Any
    pending_bytes: Any

class Incomplete(ValueError):
    ...

MAX_ADDRESS_BYTES: int
MAX_MESSAGE_BYTES: int
MAX_PADDING_BYTES: int
MAX_TCP_REQUEST_BYTES: int
MAX_UDP_PACKET: int
TCP_REQUEST_PADDING: tuple
TCP_RESPONSE_PADDING: tuple
class TcpRequestParser:
    address: Any

class TcpResponseParser:
    message: Any
    ok: Any

class UdpMessage:
    def __init__(self, *args, **kwargs) -> None: ...
    address: Any
    def encode(self, *args, **kwargs) -> Any: ...
    frag_count: Any
    frag_id: Any
    packet_id: Any
    payload: Any
    session_id: Any

def encode_tcp_request(*args, **kwargs) -> Any: ...
def encode_tcp_response(*args, **kwargs) -> Any: ...
def encode_udp_message(*args, **kwargs) -> Any: ...
def fragment_udp_message(*args, **kwargs) -> Any: ...
def parse_tcp_request(*args, **kwargs) -> Any: ...
def parse_tcp_response(*args, **kwargs) -> Any: ...
def parse_udp_message(*args, **kwargs) -> Any: ...
