"""The server's face on the wire, recorded from a real handshake with a real ``fastpath serve``
and compared field by field with what the reference server (Hysteria 2, quic-go) sends.

A prober that opens a QUIC connection sees the server's transport parameters (in the TLS
handshake) and its HTTP/3 control stream before sending any request, and a masquerade answer
after one.  Our client connects in-process here with hooks that keep the raw bytes as aioquic
receives them: the transport parameter extension before aioquic parses it, and every
unidirectional stream the server opens.  The reference's values below are facts taken from the
reference server (also in ``/work/shared/spec/hysteria2.md``, "Observed against stock peers").
"""
from __future__ import annotations

import asyncio
import email.utils

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastpath.hy2.client.client import simple_client
from fastpath.hy2.server.masquerade import FileMasquerade, NotFoundMasquerade, StringMasquerade, go_writer
from fastpath.hy2.quic.quic_connection import Hy2QuicConnection
from fastpath.worker.event_loop import run
from tests.hy2 import reference_codecs as ref
from tests.hy2.test_stock_client import node  # noqa: F401  (a node and its default secret)

pytestmark = pytest.mark.integration

GREASE = "grease"
# The reference server's transport parameters, in its order: (id, value); bytes-valued ones
# are checked for their meaning below.
REFERENCE_PARAMETERS = [
    (GREASE, None),
    (0x05, 8388608),        # initial_max_stream_data_bidi_local
    (0x06, 8388608),        # initial_max_stream_data_bidi_remote
    (0x07, 8388608),        # initial_max_stream_data_uni
    (0x04, 20971520),       # initial_max_data
    (0x08, 1024),           # initial_max_streams_bidi
    (0x09, 100),            # initial_max_streams_uni
    (0x01, 30000),          # max_idle_timeout (ms)
    (0x03, 1452),           # max_udp_payload_size
    (0x0B, 26),             # max_ack_delay (ms)
    (0x02, "reset token"),  # stateless_reset_token
    (0x00, "odcid"),        # original_destination_connection_id
    (0x0E, 4),              # active_connection_id_limit
    (0x0F, "scid"),         # initial_source_connection_id
    (0x20, 1200),           # max_datagram_frame_size
]
BYTES_PARAMETERS = {0x00, 0x02, 0x0F, 0x10}
REFERENCE_SETTINGS = [(0x8, 1)]                      # SETTINGS_ENABLE_CONNECT_PROTOCOL only
REFERENCE_UNI_STREAMS = [0x00]                       # the control stream, nothing else


def _pull_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, n = ref.varint_decode(data, pos)
    return value, pos + n


def decode_parameters(data: bytes) -> list[tuple[int, bytes]]:
    """Transport parameters as (id, raw value), in wire order."""
    out, pos = [], 0
    while pos < len(data):
        pid, pos = _pull_varint(data, pos)
        length, pos = _pull_varint(data, pos)
        out.append((pid, data[pos:pos + length]))
        pos += length
    assert pos == len(data)
    return out


def decode_settings(payload: bytes) -> list[tuple[int, int]]:
    out, pos = [], 0
    while pos < len(payload):
        key, pos = _pull_varint(payload, pos)
        value, pos = _pull_varint(payload, pos)
        out.append((key, value))
    return out


class Recording:
    def __init__(self):
        self.parameters: bytes | None = None
        self.uni: dict[int, bytearray] = {}       # server-opened unidirectional streams
        self.odcid = self.scid = None


@pytest.fixture(scope="module")
def recorded(node):
    rec = Recording()
    orig_parse = Hy2QuicConnection._parse_transport_parameters
    orig_next = Hy2QuicConnection.next_event

    def parse(self, data, from_session_ticket=False):
        if rec.parameters is None and self._is_client:
            rec.parameters = bytes(data)
            rec.odcid = self._original_destination_connection_id
        return orig_parse(self, data, from_session_ticket)

    def next_event(self):
        event = orig_next(self)
        sid = getattr(event, "stream_id", None)
        if sid is not None and sid & 0x3 == 0x3 and hasattr(event, "data"):
            rec.uni.setdefault(sid, bytearray()).extend(event.data)
        return event

    async def connect():
        client = simple_client(node.config["listen"], node.secret)
        await client.connect()
        await asyncio.sleep(0.5)            # whatever the server sends after auth, too
        rec.scid = client.conn.quic._peer_cid.cid
        await client.close()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Hy2QuicConnection, "_parse_transport_parameters", parse)
        mp.setattr(Hy2QuicConnection, "next_event", next_event)
        run(connect())
    assert rec.parameters is not None
    return rec


def test_transport_parameters_match_the_reference_field_by_field(recorded):
    params = decode_parameters(recorded.parameters)
    ids = [GREASE if pid % 31 == 27 else pid for pid, _ in params]
    assert ids == [pid for pid, _ in REFERENCE_PARAMETERS]
    for (pid, raw), (want_id, want) in zip(params, REFERENCE_PARAMETERS):
        if want_id == GREASE:
            assert len(raw) < 16
        elif pid in BYTES_PARAMETERS:
            continue
        else:
            assert ref.varint_decode(raw, 0) == (want, len(raw)), hex(pid)
    by_id = dict(params)
    assert len(by_id[0x02]) == 16
    assert by_id[0x00] == recorded.odcid            # the client's first destination ID
    assert by_id[0x0F] == recorded.scid             # the ID the server answers from
    assert 0x0A not in by_id and 0x11 not in by_id  # no ack_delay_exponent, no version info


def test_http3_settings_and_streams_match_the_reference(recorded):
    types = {}
    for sid, data in sorted(recorded.uni.items()):
        types[sid], _ = ref.varint_decode(bytes(data), 0)
    assert sorted(types.values()) == REFERENCE_UNI_STREAMS
    (control,) = [bytes(d) for sid, d in recorded.uni.items() if types[sid] == 0x00]
    pos = ref.varint_decode(control, 0)[1]
    frame_type, pos = _pull_varint(control, pos)
    length, pos = _pull_varint(control, pos)
    assert frame_type == 0x04                        # SETTINGS first
    assert decode_settings(control[pos:pos + length]) == REFERENCE_SETTINGS


def _assert_go_headers(resp, content_type: str | None):
    status, headers, body = resp
    h = dict(headers)
    assert len(h) == len(headers)                    # no name twice
    assert email.utils.parsedate_to_datetime(h["date"]).tzname() == "UTC"
    assert h["date"].endswith(" GMT")
    if content_type is not None:
        assert h["content-type"] == content_type
    assert h["content-length"] == str(len(body))


def test_masquerade_answers_carry_go_headers_in_every_mode(tmp_path):
    (tmp_path / "index.html").write_text("<html><body>home</body></html>")
    (tmp_path / "blob").write_bytes(bytes(range(256)))
    _assert_go_headers(run(NotFoundMasquerade().respond({}, b"")), "text/plain; charset=utf-8")
    # A string without a content type: sniffed as Go does.
    _assert_go_headers(run(StringMasquerade(200, {}, "just text").respond({}, b"")),
                       "text/plain; charset=utf-8")
    _assert_go_headers(run(StringMasquerade(200, {}, "<!DOCTYPE html><p>x").respond({}, b"")),
                       "text/html; charset=utf-8")
    _assert_go_headers(run(StringMasquerade(200, {"Content-Type": "x/y"}, "z").respond({}, b"")), "x/y")
    files = FileMasquerade(str(tmp_path))
    _assert_go_headers(run(files.respond({":path": "/"}, b"")), "text/html; charset=utf-8")
    _assert_go_headers(run(files.respond({":path": "/missing"}, b"")), "text/plain; charset=utf-8")
    _assert_go_headers(run(files.respond({":path": "/blob"}, b"")), "application/octet-stream")


def test_server_parameters_parse_with_a_stock_parser(tls_files):
    """What the server sends, read back by aioquic's own transport-parameter parser (as any
    aioquic peer would): every value lands where it should, the GREASE entry is skipped."""
    from aioquic.buffer import Buffer
    from aioquic.quic.packet import pull_quic_transport_parameters

    from fastpath.hy2.quic.quic_connection import quic_configuration
    from fastpath.hy2.config import QuicSettings
    cfg = quic_configuration(is_client=False, quic_settings=QuicSettings(), connection_id_length=8)
    cfg.load_cert_chain(*tls_files)
    quic = Hy2QuicConnection(configuration=cfg, original_destination_connection_id=b"\x01" * 8,
                             max_incoming_streams=1024)
    raw = quic._serialize_transport_parameters()
    p = pull_quic_transport_parameters(Buffer(data=raw))
    assert (p.initial_max_stream_data_bidi_local, p.initial_max_stream_data_bidi_remote,
            p.initial_max_stream_data_uni, p.initial_max_data) == (8388608,) * 3 + (20971520,)
    assert (p.initial_max_streams_bidi, p.initial_max_streams_uni) == (1024, 100)
    assert (p.max_idle_timeout, p.max_udp_payload_size, p.max_ack_delay) == (30000, 1452, 26)
    assert (p.active_connection_id_limit, p.max_datagram_frame_size) == (4, 1200)
    assert p.original_destination_connection_id == b"\x01" * 8
    assert p.initial_source_connection_id == quic.host_cid
    assert p.stateless_reset_token == quic._host_cids[0].stateless_reset_token
    assert p.retry_source_connection_id is None and p.ack_delay_exponent is None
    # Each call draws a fresh GREASE entry (ids 31*N+27), as the reference does per handshake.
    ids = {decode_parameters(quic._serialize_transport_parameters())[0][0] for _ in range(20)}
    assert len(ids) > 1 and all(i % 31 == 27 for i in ids)


SNIFFED = {"text/plain; charset=utf-8", "text/html; charset=utf-8", "text/xml; charset=utf-8",
           "application/octet-stream", "application/pdf", "application/postscript", "image/gif",
           "image/png", "image/jpeg", "image/bmp", "application/zip", "application/x-gzip",
           "font/woff", "font/woff2", "text/plain; charset=utf-16be", "text/plain; charset=utf-16le"}


@given(body=st.binary(max_size=2048), status=st.integers(100, 599),
       named=st.sampled_from([None, "x/y"]))
@settings(max_examples=300, deadline=None)
def test_go_writer_on_any_body(body, status, named):
    """Any body gets a date and a content type from Go's set (none for an empty body), a set
    one is kept, and nothing is added twice."""
    headers = [("content-type", named)] if named else []
    out_status, out, out_body = go_writer((status, headers, body))
    h = dict(out)
    assert out_status == status and out_body == body and len(h) == len(out)
    assert "date" in h
    if named:
        assert h["content-type"] == named
    elif body:
        assert h["content-type"] in SNIFFED
    else:
        assert "content-type" not in h
    assert go_writer((out_status, out, out_body))[1] == out       # idempotent
