"""Listeners on a certificate of the TLS store, by id (issue 16 item 6): the Hysteria 2
listener (``tls: {certId}``) and a SOCKS5 inbound in TLS (``inbounds[].tls.certId``) serve the
stored certificate, proven by its SHA-256 on the wire; an id the store lacks stops the node at
start with the key named."""
from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
import struct

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from fastpath.hy2.client.client import simple_client
from fastpath.worker.event_loop import run
from tests.hy2scale.conftest import SCALE, ScaleClient
from tests.support.node import NodeProcess, free_tcp_port, free_udp_port

pytestmark = pytest.mark.integration

USER, SECRET = "tlsuser", "tls-user-secret-0123456789"


def stored_der(node, cert_id) -> bytes:
    r = ScaleClient(node).get(f"/tls/{cert_id}/pem")
    assert r.status == 200, r.text
    assert r.json()["key"] == ""                       # keys never leave the node
    return x509.load_pem_x509_certificate(r.json()["cert"].encode()).public_bytes(Encoding.DER)


def test_hysteria_and_a_tls_socks_inbound_serve_a_stored_certificate(tmp_path, targets):
    data = tmp_path / "data"
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    with NodeProcess(tmp_path / "first", {"scale": dict(SCALE)}, data_dir=data) as first:
        r = ScaleClient(first)("POST", "/tls/generate", {"id": "edge", "name": "edge", "domains": ["edge.test"]})
        assert r.status in (200, 201), r.text
        der = stored_der(first, "edge")
    socks = free_tcp_port()
    config = {"scale": dict(SCALE), "tls": {"certId": "edge"}, "listen": f"127.0.0.1:{free_udp_port()}",
              "inbounds": [{"type": "socks", "listen": f"127.0.0.1:{socks}", "tag": "socks-tls",
                            "tls": {"certId": "edge"}}]}
    with NodeProcess(tmp_path / "second", config, data_dir=data) as node:
        assert node.post("/api/v1/users", {"id": USER, "auth_secret": SECRET}).status in (200, 201)
        pin = hashlib.sha256(der).hexdigest()

        async def hy2():
            client = simple_client(node.config["listen"], SECRET, insecure=False, pin_sha256=pin,
                                   sni="edge.test")
            await client.connect()
            reader, writer = await client.open_tcp(f"127.0.0.1:{targets.echo}")
            writer.write(b"over the stored cert")
            got = await asyncio.wait_for(reader.readexactly(20), 5)
            await client.close()
            return got
        assert run(hy2()) == b"over the stored cert"
        # A pin of another certificate is refused: the pin is really checked.
        async def wrong_pin():
            client = simple_client(node.config["listen"], SECRET, insecure=False, pin_sha256="00" * 32)
            with pytest.raises(Exception):
                await client.connect(timeout=3)
            await client.close()
        run(wrong_pin())

        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", socks), 5) as raw, \
                ctx.wrap_socket(raw, server_hostname="edge.test") as s:
            assert s.getpeercert(binary_form=True) == der
            s.sendall(b"\x05\x01\x02")
            assert s.recv(2) == b"\x05\x02"
            s.sendall(b"\x01" + bytes([len(USER)]) + USER.encode() + bytes([len(SECRET)]) + SECRET.encode())
            assert s.recv(2) == b"\x01\x00"
            s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", targets.echo))
            assert s.recv(10)[:2] == b"\x05\x00"
            s.sendall(b"socks in tls")
            assert s.recv(12) == b"socks in tls"


def test_an_id_the_store_lacks_stops_the_node_with_the_key_named(tmp_path):
    node = NodeProcess(tmp_path, {"tls": {"certId": "missing"}})
    with pytest.raises(RuntimeError) as info:
        node.start(timeout=15)
    node.stop()
    assert "tls.certId" in str(info.value) and "missing" in str(info.value), str(info.value)
