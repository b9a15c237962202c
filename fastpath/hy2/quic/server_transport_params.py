"""The server's QUIC transport parameters, in the reference server's order and with its values.

aioquic writes its transport parameters in its own order (by id) with its own extras
(``version_information``, ``ack_delay_exponent``, ``max_ack_delay`` 25), which a prober
comparing handshakes can tell from the reference server (quic-go).  This is the one place that
replaces aioquic's serialiser for the server side (``Hy2QuicConnection`` calls it); the client
keeps aioquic's, which parrots Chrome.

The reference server sends, in this order (facts, ``/work/shared/spec/hysteria2.md``):
a GREASE parameter (reserved id ``31 * N + 27``, a few random bytes), the three stream windows,
the connection window, the bidirectional and unidirectional stream limits, the idle timeout,
``max_udp_payload_size`` 1452, ``max_ack_delay`` 26, the stateless reset token, the original
destination connection ID, ``active_connection_id_limit`` 4, the initial source connection ID,
the retry source connection ID (after a Retry only) and ``max_datagram_frame_size``.  No
``ack_delay_exponent`` (the default, 3, is aioquic's too) and no ``version_information``.
"""
from __future__ import annotations

import os
import secrets

from aioquic.buffer import Buffer

from fastpath.hy2.quic.aioquic_seam import local_parameters

# Values the reference server advertises that are not configuration.
MAX_UDP_PAYLOAD_SIZE = 1452
MAX_ACK_DELAY_MS = 26            # quic-go: its 25 ms ack delay plus the timer granularity
ACTIVE_CONNECTION_ID_LIMIT = 4
UNI_STREAMS = 100

# Transport parameter ids (RFC 9000 §18.2, RFC 9221).
ORIGINAL_DCID, IDLE, RESET_TOKEN, UDP_PAYLOAD, MAX_DATA = 0x00, 0x01, 0x02, 0x03, 0x04
STREAM_BIDI_LOCAL, STREAM_BIDI_REMOTE, STREAM_UNI = 0x05, 0x06, 0x07
STREAMS_BIDI, STREAMS_UNI, ACK_DELAY, CID_LIMIT = 0x08, 0x09, 0x0B, 0x0E
INITIAL_SCID, RETRY_SCID, MAX_DATAGRAM_FRAME = 0x0F, 0x10, 0x20


def grease_parameter() -> tuple[int, bytes]:
    """A reserved parameter (RFC 9000 §18.1) as the reference sends first: a random id of the
    form 31 * N + 27 and 0 to 15 random bytes."""
    return 27 + 31 * secrets.randbelow(256), os.urandom(secrets.randbelow(16))


def _push(buf: Buffer, param_id: int, value: int | bytes) -> None:
    if isinstance(value, int):
        inner = Buffer(capacity=8)
        inner.push_uint_var(value)
        value = inner.data
    buf.push_uint_var(param_id)
    buf.push_uint_var(len(value))
    buf.push_bytes(value)


def server_transport_parameters(quic) -> bytes:
    """The encoded parameters of a server-side ``QuicConnection`` (read from aioquic's own
    state through ``aioquic_seam.local_parameters``, so what is advertised is what the
    connection enforces)."""
    grease_id, grease_value = grease_parameter()
    own = local_parameters(quic)
    params: list[tuple[int, int | bytes | None]] = [
        (grease_id, grease_value),
        (STREAM_BIDI_LOCAL, own.max_stream_data_bidi_local),
        (STREAM_BIDI_REMOTE, own.max_stream_data_bidi_remote),
        (STREAM_UNI, own.max_stream_data_uni),
        (MAX_DATA, own.max_data),
        (STREAMS_BIDI, own.max_streams_bidi),
        (STREAMS_UNI, own.max_streams_uni),
        (IDLE, int(own.idle_timeout * 1000)),
        (UDP_PAYLOAD, MAX_UDP_PAYLOAD_SIZE),
        (ACK_DELAY, MAX_ACK_DELAY_MS),
        (RESET_TOKEN, own.stateless_reset_token),
        (ORIGINAL_DCID, own.original_destination_connection_id),
        (CID_LIMIT, own.active_connection_id_limit),
        (INITIAL_SCID, own.initial_source_connection_id),
        (RETRY_SCID, own.retry_source_connection_id),
        (MAX_DATAGRAM_FRAME, own.max_datagram_frame_size),
    ]
    buf = Buffer(capacity=1024)
    for param_id, value in params:
        if value is not None:
            _push(buf, param_id, value)
    return buf.data
