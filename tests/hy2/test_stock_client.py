"""The reference Hysteria 2 client (apernet/hysteria, Go, from the ``hysteria2`` wheel on PyPI)
against a real ``fastpath serve``: the wire compatibility check that our own client cannot give.

The wheel embeds the reference client and starts it from a JSON config; each test runs it in
its own process (it runs until killed) with SOCKS5, HTTP and TCP/UDP forwarding listeners, and
moves known bytes through it to local targets.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.hy2.conftest import hy2_node
from tests.hy2.targets import pattern
from tests.support.logged_process import LoggedProcess
from tests.support.node import free_tcp_port, free_udp_port

# Only looked up here, never imported: the wheel starts a Go runtime, which belongs in its own
# process, not in the test runner.
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(importlib.util.find_spec("hysteria2") is None,
                                 reason="the reference client's wheel has no build for this platform")]

RUNNER = "import sys, hysteria2; hysteria2.startFromJSON(sys.argv[1])"
OBFS_PASSWORD = "stock-client-obfs"


class StockClient(LoggedProcess):
    """The reference client in a child process (its JSON config on argv), its log in a file."""

    label = "reference client"

    def argv(self) -> list[str]:
        return [sys.executable, "-c", RUNNER, json.dumps(self.config)]


class PayloadServer(ThreadingHTTPServer):
    daemon_threads = True


def payload_server(body: bytes) -> tuple[PayloadServer, int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = PayloadServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with hy2_node(tmp_path_factory, "stock-node") as n:
        yield n


@pytest.fixture(scope="module")
def obfs_node(tmp_path_factory):
    config = {"obfs": {"type": "salamander", "salamander": {"password": OBFS_PASSWORD}}}
    with hy2_node(tmp_path_factory, "stock-obfs-node", config) as n:
        yield n


def client_config(node, **extra) -> dict:
    return {"server": node.config["listen"], "auth": node.secret, "tls": {"insecure": True},
            "fastOpen": False, "lazy": False, **extra}


def user_traffic(node, user="default") -> tuple[int, int]:
    entry = node.get("/api/v1/traffic").json()["users"].get(user) or {}
    return entry.get("tx", 0), entry.get("rx", 0)


def wait_traffic(node, expected: tuple[int, int], timeout: float = 5) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    seen = user_traffic(node)
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = user_traffic(node)
    return seen


def test_tcp_forwarding_moves_exact_bytes_both_ways(node, targets, tmp_path):
    source_port, sink_port = free_tcp_port(), free_tcp_port()
    config = client_config(node, bandwidth={"up": "200 mbps", "down": "400 mbps"},   # Brutal
                           tcpForwarding=[{"listen": f"127.0.0.1:{source_port}",
                                           "remote": f"127.0.0.1:{targets.source}"},
                                          {"listen": f"127.0.0.1:{sink_port}",
                                           "remote": f"127.0.0.1:{targets.sink}"}])
    down, up = 20 << 20, 8 << 20
    before = user_traffic(node)
    with StockClient(tmp_path, config) as client:
        client.wait_log("connected to server")
        client.wait_log("TCP forwarding listening")

        with socket.create_connection(("127.0.0.1", source_port), timeout=20) as s:
            s.sendall(struct.pack(">QQ", down, 7))
            got = hashlib.sha256()
            n = 0
            while n < down:
                data = s.recv(1 << 20)
                assert data, f"stream ended after {n} of {down} bytes"
                got.update(data)
                n += len(data)
        want = hashlib.sha256()
        for chunk in pattern(down, 7):
            want.update(chunk)
        assert got.digest() == want.digest()

        with socket.create_connection(("127.0.0.1", sink_port), timeout=20) as s:
            s.sendall(struct.pack(">Q", up))
            want = hashlib.sha256()
            for chunk in pattern(up, 9):
                s.sendall(chunk)
                want.update(chunk)
            digest = b""
            while len(digest) < 32:
                data = s.recv(32 - len(digest))
                assert data
                digest += data
        assert digest == want.digest()

        # Every payload byte lands on the user, exactly: tx = client upload, rx = download.
        expected = (before[0] + 16 + 8 + up, before[1] + down + 32)
        assert wait_traffic(node, expected) == expected


def test_socks5_and_http_proxy_listeners(node, tmp_path):
    body = os.urandom(3 << 20)
    server, port = payload_server(body)
    socks, http_proxy = free_tcp_port(), free_tcp_port()
    config = client_config(node, socks5={"listen": f"127.0.0.1:{socks}"},
                           http={"listen": f"127.0.0.1:{http_proxy}"})
    try:
        with StockClient(tmp_path, config) as client:
            client.wait_log("SOCKS5 server listening")
            client.wait_log("HTTP proxy server listening")
            for proxy in (["--socks5-hostname", f"127.0.0.1:{socks}"],
                          ["-x", f"http://127.0.0.1:{http_proxy}"]):
                out = subprocess.run(["curl", "-sS", "--max-time", "20", *proxy,
                                      f"http://127.0.0.1:{port}/payload"],
                                     capture_output=True, timeout=30)
                assert out.returncode == 0, out.stderr
                assert hashlib.sha256(out.stdout).digest() == hashlib.sha256(body).digest()
    finally:
        server.shutdown()


def echo_of(s: socket.socket, payload: bytes, earlier: set[bytes]) -> bool:
    """Wait for ``payload`` to come back, skipping late answers to earlier payloads."""
    while True:
        try:
            answer = s.recv(65536)
        except TimeoutError:
            return False
        if answer == payload:
            return True
        assert answer in earlier, "an answer that was never sent"


def udp_round_trips(port: int, sizes, rounds: int = 5) -> int:
    """Echo ``rounds`` payloads of each size; returns the bytes sent.  UDP may lose a datagram
    on a loaded machine, so a payload without an answer is sent again (up to 3 times)."""
    sent = 0
    earlier: set[bytes] = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.connect(("127.0.0.1", port))
        for size in sizes:
            for _ in range(rounds):
                payload = os.urandom(size)
                for _attempt in range(3):
                    s.send(payload)
                    sent += size
                    if echo_of(s, payload, earlier):
                        break
                else:
                    pytest.fail(f"no echo of a {size}-byte payload after 3 tries")
                earlier.add(payload)
                time.sleep(0.01)     # paced: loopback drops bursts
    return sent


def test_udp_forwarding_small_and_fragmented(node, targets, tmp_path):
    port = free_udp_port()
    config = client_config(node, udpForwarding=[{"listen": f"127.0.0.1:{port}",
                                                 "remote": f"127.0.0.1:{targets.udp}",
                                                 "timeout": "30s"}])
    before = user_traffic(node)
    with StockClient(tmp_path, config) as client:
        client.wait_log("UDP forwarding listening")
        sent = udp_round_trips(port, (100, 3000))      # 3000 bytes: fragmented both ways
        echoed = 5 * 3100
        if sent == echoed:      # nothing lost: every payload byte counted once each way
            expected = (before[0] + echoed, before[1] + echoed)
            assert wait_traffic(node, expected) == expected
        else:                   # a resend: counted between what came back and what was sent
            time.sleep(1)
            tx, rx = (a - b for a, b in zip(user_traffic(node), before))
            assert echoed <= tx <= sent and echoed <= rx <= tx, (tx, rx, sent)


def test_salamander_on_both_ends(obfs_node, targets, tmp_path):
    port = free_tcp_port()
    config = client_config(obfs_node, obfs={"type": "salamander",
                                            "salamander": {"password": OBFS_PASSWORD}},
                           tcpForwarding=[{"listen": f"127.0.0.1:{port}",
                                           "remote": f"127.0.0.1:{targets.echo}"}])
    with StockClient(tmp_path, config) as client:
        client.wait_log("connected to server")
        client.wait_log("TCP forwarding listening")
        payload = os.urandom(256 << 10)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(payload)
            got = b""
            while len(got) < len(payload):
                data = s.recv(1 << 16)
                assert data
                got += data
        assert got == payload


def test_without_salamander_the_obfuscated_node_is_unreachable(obfs_node, tmp_path):
    config = client_config(obfs_node, socks5={"listen": f"127.0.0.1:{free_tcp_port()}"},
                           quic={"handshakeTimeout": "2s"})
    with StockClient(tmp_path, config) as client:
        client.proc.wait(30)
        assert client.proc.returncode != 0
        assert "failed to initialize client" in client.log


def test_wrong_password_is_refused_as_a_plain_404(node, tmp_path):
    config = client_config(node, auth="not-the-secret",
                           socks5={"listen": f"127.0.0.1:{free_tcp_port()}"})
    with StockClient(tmp_path, config) as client:
        client.proc.wait(30)
        assert client.proc.returncode != 0
        assert "authentication error, HTTP status code: 404" in client.log


def kick_ends_an_echoing_stream(node, port: int) -> None:
    """A stream through the client's forward at ``port`` echoes; kicking the default user
    ends it with the connection it rides on."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"ping")
    assert s.recv(4) == b"ping"
    kicked = node.post("/api/v1/users/default/kick")
    assert kicked.status < 300, kicked.body
    s.settimeout(5)
    try:
        assert s.recv(4) == b""          # the relayed stream ends with the connection
    except ConnectionResetError:
        pass
    finally:
        s.close()


def test_kick_closes_the_reference_clients_connection(node, targets, tmp_path):
    port = free_tcp_port()
    config = client_config(node, tcpForwarding=[{"listen": f"127.0.0.1:{port}",
                                                 "remote": f"127.0.0.1:{targets.echo}"}])
    with StockClient(tmp_path, config) as client:
        client.wait_log("TCP forwarding listening")
        kick_ends_an_echoing_stream(node, port)
        client.wait_log("Application error 0x107")      # the kick's close code reached it
        # The reference client notices the closed connection on its next request and
        # reconnects on the one after; the node lets the user back in.
        answers = []
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as again:
                try:
                    again.sendall(b"pong")
                    answers.append(again.recv(4))
                except ConnectionResetError:
                    answers.append(b"reset")
            if answers[-1] == b"pong":
                break
        assert answers[-1] == b"pong", (answers, client.log)

