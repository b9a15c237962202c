"""aioquic's H3Connection, tolerant of peers that enable H3_DATAGRAM without announcing
``max_datagram_frame_size`` (recent reference clients do not announce it; refusing them would
close the connection during auth), and the server's variant with the reference server's
SETTINGS and streams (``ServerH3Connection``)."""
from __future__ import annotations

import pylsqpack
from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import H3Connection, Setting, SettingsError, StreamType


class LenientH3Connection(H3Connection):
    def _validate_settings(self, settings: dict[int, int]) -> None:
        try:
            super()._validate_settings(settings)
        except SettingsError as exc:
            if "max_datagram_frame_size" not in str(exc):
                raise


class _LazyQpackStreams:
    """The QUIC connection as the server's H3Connection sees it: writes to the QPACK encoder
    and decoder streams open those streams on the first byte instead of at start, and empty
    writes to them (aioquic makes one for every header block) do nothing.  With no dynamic
    table either way (none advertised, none accepted) they never open, as with the reference
    server.  Everything else goes to the real connection."""

    def __init__(self, quic, markers: dict[int, int]) -> None:
        self._quic = quic
        self._markers = markers              # placeholder id -> QPACK stream type
        self._opened: dict[int, int] = {}    # placeholder id -> real stream id

    def __getattr__(self, name):
        return getattr(self._quic, name)

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        stream_type = self._markers.get(stream_id)
        if stream_type is None:
            self._quic.send_stream_data(stream_id, data, end_stream)
            return
        if not data and not end_stream:
            return
        real = self._opened.get(stream_id)
        if real is None:
            real = self._opened[stream_id] = self._quic.get_next_available_stream_id(
                is_unidirectional=True)
            self._quic.send_stream_data(real, encode_uint_var(stream_type))
        self._quic.send_stream_data(real, data, end_stream)


class _StaticTableEncoder:
    """A QPACK encoder that never uses a dynamic table, whatever the peer offers (the
    reference's encoder is static-only): no encoder-stream instructions, ever."""

    def __init__(self) -> None:
        self._encoder = pylsqpack.Encoder()

    def apply_settings(self, max_table_capacity: int, blocked_streams: int) -> bytes:
        return self._encoder.apply_settings(max_table_capacity=0, blocked_streams=0)

    def encode(self, stream_id: int, headers):
        return self._encoder.encode(stream_id, headers)

    def feed_decoder(self, data: bytes) -> None:
        self._encoder.feed_decoder(data)


class ServerH3Connection(LenientH3Connection):
    """The server's HTTP/3 face as the reference server shows it: one control stream whose
    SETTINGS carry only ENABLE_CONNECT_PROTOCOL (0x8) = 1, no QPACK encoder or decoder
    stream, no dynamic table either way (aioquic would send its table size, blocked streams, its fixed
    0x21 entry and open both QPACK streams at once)."""

    _ENCODER, _DECODER = -1, -2          # never a real stream id

    def __init__(self, quic) -> None:
        super().__init__(_LazyQpackStreams(quic, {self._ENCODER: StreamType.QPACK_ENCODER,
                                                  self._DECODER: StreamType.QPACK_DECODER}))
        # No dynamic table for the peer's encoder: what the SETTINGS above advertise.
        self._decoder = pylsqpack.Decoder(0, 0)
        self._encoder = _StaticTableEncoder()

    def _get_local_settings(self) -> dict[int, int]:
        return {Setting.ENABLE_CONNECT_PROTOCOL: 1}

    def _create_uni_stream(self, stream_type: int, push_id: int | None = None) -> int:
        if stream_type == StreamType.QPACK_ENCODER:
            return self._ENCODER
        if stream_type == StreamType.QPACK_DECODER:
            return self._DECODER
        return super()._create_uni_stream(stream_type, push_id)
