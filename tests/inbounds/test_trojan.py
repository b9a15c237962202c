"""The Trojan inbound: sing-box as the client (20 MiB both ways, bytes exact on the user), the
fallback of whatever is not Trojan (curl over TLS gets the fallback site), and the request
parser under hypothesis."""
from __future__ import annotations

import socket
import ssl
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from fastpath.inbounds.trojan import HASH_LEN, parse_request, password_hash
from fastpath.proxy.socks5 import encode_address
from tests.inbounds.peers import (counted_both_ways, download_and_upload, sing_box_client,
                                  traffic, wait_traffic)
from tests.hy2.test_stock_client import payload_server
from tests.support.node import NodeProcess, free_tcp_port

USER, SECRET = "dave", "dave-trojan-password-0123456789"
SITE = b"<html>an ordinary site</html>\n"


@pytest.fixture(scope="module")
def site():
    server, port = payload_server(SITE)
    yield port
    server.shutdown()


@pytest.fixture(scope="module")
def node(tmp_path_factory, site):
    port = free_tcp_port()
    config = {"inbounds": [{"type": "trojan", "listen": f"127.0.0.1:{port}", "tag": "trojan-in",
                            "fallback": f"127.0.0.1:{site}"}]}
    with NodeProcess(tmp_path_factory.mktemp("trojan"), config) as n:
        assert n.post("/api/v1/users", {"id": USER, "auth_secret": SECRET}).status in (200, 201)
        n.trojan = port
        yield n


def test_what_is_not_trojan_reaches_the_fallback_site(node):
    r = subprocess.run(["curl", "-sk", "--max-time", "10", f"https://127.0.0.1:{node.trojan}/"],
                       capture_output=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == SITE


def test_a_wrong_password_also_reaches_the_fallback(node):
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", node.trojan), 5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(password_hash("wrong") + b"\r\n\x01" + encode_address("127.0.0.1:1") + b"\r\n"
                  + b"GET / HTTP/1.0\r\n\r\n")
        s.settimeout(5)
        answer = b""
        while True:
            data = s.recv(4096)
            if not data:
                break
            answer += data
    # The fallback got the bytes as they came: the site answers them as the garbage they are
    # (Python's http.server: a 400 page).
    assert b"400" in answer and b"Bad request" in answer


def test_sing_box_through_trojan_20_mib_both_ways(node, targets, tmp_path):
    outbound = {"type": "trojan", "server": "127.0.0.1", "server_port": node.trojan,
                "password": SECRET,
                "tls": {"enabled": True, "insecure": True, "server_name": "localhost"}}
    size = 20 << 20
    with sing_box_client(tmp_path, outbound) as local:
        before = traffic(node, USER)
        download_and_upload(local, targets, size, 41)
    tx, rx = counted_both_ways(size)
    expected = (before[0] + tx, before[1] + rx)
    assert wait_traffic(node, USER, expected) == expected


GOOD = password_hash("x") + b"\r\n\x01" + encode_address("example.test:443") + b"\r\n"


def test_the_parser_reads_a_whole_request_and_waits_on_a_partial_one():
    user, cmd, address, used = parse_request(GOOD + b"data")
    assert (user, cmd, address, used) == (password_hash("x"), 1, "example.test:443", len(GOOD))
    for cut in range(len(GOOD)):
        assert parse_request(GOOD[:cut]) is None


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120), st.integers(min_value=0, max_value=len(GOOD)))
def test_the_parser_on_hostile_bytes(tail, cut):
    for head in (tail, GOOD[:cut] + tail, password_hash("x") + tail):
        try:
            parsed = parse_request(head)
        except ValueError:
            continue
        if parsed is not None:
            assert parsed[3] <= len(head) and len(parsed[0]) == HASH_LEN
