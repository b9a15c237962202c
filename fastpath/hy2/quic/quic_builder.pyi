"""Type stub of the compiled module fastpath.hy2.quic.quic_builder (fastpath/hy2/quic/quic_builder.pyx).

The names here are the module's public names (tests/test_stubs.py checks them).
"""
from typing import Any

class QuicPacketBuilder:
    def __init__(self, *args, **kwargs) -> None: ...
    def flush(self) -> Any: ...
    max_flight_bytes: Any
    max_total_bytes: Any
    packet_is_empty: Any
    packet_number: Any
    quic_logger_frames: Any
    remaining_buffer_space: Any
    remaining_flight_space: Any
    def start_frame(self, frame_type, capacity = 1, handler = None, handler_args = ...) -> Any: ...
    def start_packet(self, packet_type, crypto) -> Any: ...

class SentPacket:
    def __init__(self, *args, **kwargs) -> None: ...
    delivery_handlers: Any
    epoch: Any
    in_flight: Any
    is_ack_eliciting: Any
    is_crypto_packet: Any
    packet_number: Any
    packet_type: Any
    quic_logger_frames: Any
    sent_bytes: Any
    sent_time: Any

def layout_ok() -> Any: ...
