"""Our client and the reference client, started from the same config, say the same things.

A stock Hysteria 2 server cannot run on this machine (the reference's wheel embeds only its
client), so our client's half of the wire is checked the other way round: both clients, given
one config (the reference's keys: JSON for it, YAML for ``fastpath client``), connect to an
in-process server that records what arrives before its own parsing: the QUIC transport
parameters and ALPN, the auth request's HTTP/3 headers, a proxy stream's raw request bytes and
a UDP message.  Field by field they must agree: what a stock server accepts from the reference
client, it gets from ours.
"""
from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
import subprocess
import sys
import time

import pytest
import yaml

from fastpath.hy2.server import server_session
from fastpath.worker.event_loop import run
from tests.hy2 import reference_codecs as ref
from tests.hy2.inprocess import password_server
from tests.hy2.test_udp_pump import _dual_stack_echo
from tests.support.node import free_tcp_port, free_udp_port

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(importlib.util.find_spec("hysteria2") is None,
                                 reason="the reference client's wheel has no build for this platform")]

REFERENCE = "import sys, hysteria2; hysteria2.startFromJSON(sys.argv[1])"
ROUNDS_TIMEOUT = 20.0


class Recorder:
    """What one client connection sent, taken from the server session as it arrives."""

    def __init__(self):
        self.auth_headers = None
        self.transport = None
        self.alpn = None
        self.tcp_requests: list[bytes] = []
        self.datagrams: list[bytes] = []

    def install(self, monkeypatch) -> None:
        recorder = self
        orig_headers = server_session.ServerSession._headers
        orig_stream = server_session.ServerSession._stream_data
        orig_datagram = server_session.ServerSession._datagram

        def headers(session, h3e):
            if recorder.auth_headers is None:
                recorder.auth_headers = list(h3e.headers)
                q = session.quic
                recorder.alpn = q.tls.alpn_negotiated
                recorder.transport = {
                    "max_datagram_frame_size": q._remote_max_datagram_frame_size,
                    "max_data": q._remote_max_data,
                    "max_stream_data_bidi_local": q._remote_max_stream_data_bidi_local,
                    "max_idle_timeout": q._remote_max_idle_timeout,
                    "max_streams_bidi": q._remote_max_streams_bidi,
                    "max_streams_uni": q._remote_max_streams_uni,
                }
            return orig_headers(session, h3e)

        def stream_data(session, event):
            sid = event.stream_id
            if (session.authenticated and sid & 0x3 == 0 and sid not in session.router.routes
                    and len(recorder.tcp_requests) < 4):
                recorder.tcp_requests.append(bytes(event.data))
            return orig_stream(session, event)

        def datagram(session, data, now):
            if len(recorder.datagrams) < 4:
                recorder.datagrams.append(bytes(data))
            return orig_datagram(session, data, now)

        monkeypatch.setattr(server_session.ServerSession, "_headers", headers)
        monkeypatch.setattr(server_session.ServerSession, "_stream_data", stream_data)
        monkeypatch.setattr(server_session.ServerSession, "_datagram", datagram)


def _config(server_port: int, tcp_fwd: int, tcp_target: int, udp_fwd: int, udp_target: int) -> dict:
    return {"server": f"127.0.0.1:{server_port}", "auth": "pw", "tls": {"insecure": True},
            "bandwidth": {"up": "100 mbps", "down": "400 mbps"},
            "tcpForwarding": [{"listen": f"127.0.0.1:{tcp_fwd}", "remote": f"127.0.0.1:{tcp_target}"}],
            "udpForwarding": [{"listen": f"127.0.0.1:{udp_fwd}", "remote": f"127.0.0.1:{udp_target}",
                               "timeout": "20s"}]}


async def _record(tls_files, monkeypatch, tmp_path, which: str) -> Recorder:
    """One client (``reference`` or ``fastpath``) through its TCP and UDP forwards."""
    recorder = Recorder()
    recorder.install(monkeypatch)
    server = await password_server(tls_files)
    udp_echo, udp_port = await _dual_stack_echo()

    async def tcp_echo(reader, writer):
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    tcp = await asyncio.start_server(tcp_echo, "127.0.0.1", 0)
    tcp_port = tcp.sockets[0].getsockname()[1]
    tcp_fwd, udp_fwd = free_tcp_port(), free_udp_port()
    config = _config(server.address[1], tcp_fwd, tcp_port, udp_fwd, udp_port)
    if which == "reference":
        cmd = [sys.executable, "-c", REFERENCE, json.dumps(config)]
    else:
        path = tmp_path / f"{which}.yaml"
        path.write_text(yaml.safe_dump(config))
        cmd = [sys.executable, "-m", "fastpath", "client", "-c", str(path)]
    log = open(tmp_path / f"{which}.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    loop = asyncio.get_running_loop()
    try:
        deadline = time.monotonic() + ROUNDS_TIMEOUT
        while True:              # the TCP forward, end to end, once it listens
            assert proc.poll() is None, (tmp_path / f"{which}.log").read_text()
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", tcp_fwd)
                writer.write(b"twin-tcp")
                if await asyncio.wait_for(reader.read(100), 5) == b"twin-tcp":
                    writer.close()
                    break
                writer.close()
            except (OSError, asyncio.TimeoutError):
                pass
            assert time.monotonic() < deadline, (tmp_path / f"{which}.log").read_text()
            await asyncio.sleep(0.2)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.setblocking(False)
        u.bind(("127.0.0.1", 0))
        for _ in range(50):      # UDP: resent until the echo comes back (loopback may drop)
            u.sendto(b"twin-udp", ("127.0.0.1", udp_fwd))
            try:
                if await asyncio.wait_for(loop.sock_recv(u, 100), 0.3) == b"twin-udp":
                    break
            except asyncio.TimeoutError:
                continue
        else:
            pytest.fail(f"no UDP echo through the {which} client")
        u.close()
    finally:
        proc.kill()
        proc.wait(10)
        log.close()
        tcp.close()
        udp_echo.close()
        await server.close()
        monkeypatch.undo()
    return recorder


@pytest.fixture(scope="module")
def twins(tls_files, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wire-twins")
    out = {}
    for which in ("reference", "fastpath"):
        with pytest.MonkeyPatch.context() as mp:
            out[which] = run(_record(tls_files, mp, tmp, which))
    return out


def _headers(rec: Recorder) -> dict[bytes, bytes]:
    return dict(rec.auth_headers)


def test_same_auth_request(twins):
    theirs, ours = _headers(twins["reference"]), _headers(twins["fastpath"])
    # The same headers, nothing more (quic-go's own three included); the pseudo-headers in the
    # same order, first.  quic-go writes the others from a Go map, in an order that changes
    # from run to run, so theirs is compared as a set.
    our_names = [k for k, _ in twins["fastpath"].auth_headers]
    their_names = [k for k, _ in twins["reference"].auth_headers]
    assert our_names[:4] == their_names[:4] == [b":authority", b":method", b":path", b":scheme"]
    assert sorted(our_names) == sorted(their_names) and len(set(our_names)) == len(our_names)
    for name in (b"content-length", b"accept-encoding", b"user-agent"):
        assert ours[name] == theirs[name], name
    for name in (b":method", b":scheme", b":authority", b":path", b"hysteria-auth", b"hysteria-cc-rx"):
        assert ours[name] == theirs[name], name
    assert theirs[b"hysteria-cc-rx"] == b"50000000"    # 400 mbps as bytes per second
    for padding in (ours[b"hysteria-padding"], theirs[b"hysteria-padding"]):
        assert 256 <= len(padding) <= 2047 and padding.isalnum()


def test_same_quic_handshake(twins):
    theirs, ours = twins["reference"], twins["fastpath"]
    assert ours.alpn == theirs.alpn == "h3"
    assert ours.transport["max_datagram_frame_size"] and theirs.transport["max_datagram_frame_size"]
    # Both parrot Chrome's transport parameters by default (windows, stream limits, idle).
    for key in ("max_data", "max_stream_data_bidi_local", "max_idle_timeout", "max_streams_bidi",
                "max_streams_uni"):
        assert ours.transport[key] == theirs.transport[key], (key, ours.transport, theirs.transport)


def _tcp_request(data: bytes) -> tuple[str, int, bytes]:
    """(address, padding length, bytes after the request) of a proxy stream's first bytes."""
    address, consumed = ref.parse_tcp_request(data)
    _kind, n1 = ref.varint_decode(data, 0)
    alen, n2 = ref.varint_decode(data, n1)
    padding, _ = ref.varint_decode(data, n1 + n2 + alen)
    return address, padding, data[consumed:]


def test_same_tcp_request(twins):
    requests = {}
    for which, rec in twins.items():
        assert rec.tcp_requests, f"no proxy stream from the {which} client"
        requests[which] = _tcp_request(rec.tcp_requests[0])
    (ref_addr, ref_pad, ref_rest), (our_addr, our_pad, our_rest) = requests["reference"], requests["fastpath"]
    assert our_addr.startswith("127.0.0.1:") and ref_addr.startswith("127.0.0.1:")   # own targets
    assert 64 <= ref_pad <= 512 and 64 <= our_pad <= 512     # the reference's padding range
    # Neither sends payload before the server's answer (fastOpen is off by default).
    assert ref_rest == our_rest == b""


def test_same_udp_message(twins):
    msgs = {}
    for which, rec in twins.items():
        assert rec.datagrams, f"no UDP message from the {which} client"
        msgs[which] = ref.parse_udp_message(rec.datagrams[0])
    theirs, ours = msgs["reference"], msgs["fastpath"]
    assert theirs is not None and ours is not None
    assert (ours.packet_id, ours.frag_id, ours.frag_count) == (theirs.packet_id, theirs.frag_id,
                                                               theirs.frag_count) == (0, 0, 1)
    assert ours.payload == theirs.payload == b"twin-udp"
    assert ours.address.rsplit(":", 1)[0] == theirs.address.rsplit(":", 1)[0] == "127.0.0.1"
