"""``fastpath client -c client.yaml`` as a real process against a real node: SOCKS5 (CONNECT and
UDP ASSOCIATE, with username/password), the HTTP proxy (CONNECT and a plain request), TCP and
UDP forwards, and a clear error when auth fails."""
from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
import threading

import pytest
import yaml

from tests.hy2.conftest import default_secret
from tests.hy2.targets import TargetThread, echo_handler
from tests.support.node import NodeProcess, free_tcp_port, free_udp_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hy2client")
    targets = TargetThread()
    targets.echo = targets.tcp(echo_handler)
    targets.udp = targets.udp_echo()

    class Hello(BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"hello {self.path} host={self.headers['Host']}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    (tmp / "node").mkdir()
    with NodeProcess(tmp / "node", {}) as node:
        ports = {"socks": free_tcp_port(), "http": free_tcp_port(), "tcpfwd": free_tcp_port(),
                 "udpfwd": free_udp_port()}
        config = {
            "server": node.config["listen"], "auth": default_secret(node.data_dir),
            "tls": {"insecure": True},
            "socks5": {"listen": f"127.0.0.1:{ports['socks']}", "username": "u", "password": "p"},
            "http": {"listen": f"127.0.0.1:{ports['http']}"},
            "tcpForwarding": [{"listen": f"127.0.0.1:{ports['tcpfwd']}",
                               "remote": f"127.0.0.1:{targets.echo}"}],
            "udpForwarding": [{"listen": f"127.0.0.1:{ports['udpfwd']}",
                               "remote": f"127.0.0.1:{targets.udp}", "timeout": "10s"}],
        }
        path = tmp / "client.yaml"
        path.write_text(yaml.safe_dump(config))
        log = open(tmp / "client.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "fastpath", "client", "-c", str(path)],
                                stdout=log, stderr=subprocess.STDOUT)
        _wait_port(ports["socks"], proc, tmp / "client.log")
        yield {"node": node, "ports": ports, "targets": targets, "http": httpd.server_address[1],
               "tmp": tmp}
        proc.terminate()
        proc.wait(10)
        log.close()
    httpd.shutdown()
    targets.close()


def _wait_port(port, proc, log_path, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"client exited: {log_path.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(log_path.read_text())


def _socks_connect(port, host, dport, user=b"u", password=b"p"):
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.sendall(b"\x05\x01\x02")
    assert s.recv(2) == b"\x05\x02"
    s.sendall(b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password)
    assert s.recv(2) == b"\x01\x00"
    return s


def _recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        assert chunk, "connection closed early"
        buf += chunk
    return buf


def test_socks5_connect(env):
    s = _socks_connect(env["ports"]["socks"], "127.0.0.1", env["targets"].echo)
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", env["targets"].echo))
    rep = _recv_exact(s, 10)
    assert rep[:2] == b"\x05\x00"
    s.sendall(b"through socks" * 1000)
    assert _recv_exact(s, 13000) == b"through socks" * 1000
    s.close()


def test_socks5_wrong_password_is_refused(env):
    s = socket.create_connection(("127.0.0.1", env["ports"]["socks"]), 5)
    s.sendall(b"\x05\x01\x02")
    assert s.recv(2) == b"\x05\x02"
    s.sendall(b"\x01\x01u\x01x")
    assert s.recv(2) == b"\x01\x01"
    s.close()


def test_socks5_udp_associate(env):
    s = _socks_connect(env["ports"]["socks"], "0.0.0.0", 0)
    s.sendall(b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
    rep = _recv_exact(s, 10)
    assert rep[:2] == b"\x05\x00"
    relay = (socket.inet_ntoa(rep[4:8]), struct.unpack(">H", rep[8:10])[0])
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(5)
    for size in (100, 3000):
        payload = bytes(size)
        header = b"\x00\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", env["targets"].udp)
        u.sendto(header + payload, relay)
        data, _ = u.recvfrom(65535)
        assert data[:10] == header and data[10:] == payload
        time.sleep(0.05)
    u.close()
    s.close()


def test_http_proxy_connect_and_plain_request(env):
    port = env["ports"]["http"]
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.sendall(f"CONNECT 127.0.0.1:{env['targets'].echo} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 200")
    s.sendall(b"tunnel")
    assert _recv_exact(s, 6) == b"tunnel"
    s.close()
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.sendall(f"GET http://127.0.0.1:{env['http']}/page?q=1 HTTP/1.1\r\nHost: 127.0.0.1:{env['http']}\r\n"
              f"Proxy-Connection: keep-alive\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    assert data.startswith(b"HTTP/1.0 200") or data.startswith(b"HTTP/1.1 200")
    assert data.endswith(f"hello /page?q=1 host=127.0.0.1:{env['http']}".encode())
    s.close()


def test_tcp_and_udp_forwards(env):
    s = socket.create_connection(("127.0.0.1", env["ports"]["tcpfwd"]), 5)
    s.sendall(b"forwarded")
    assert _recv_exact(s, 9) == b"forwarded"
    s.close()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(5)
    u.sendto(b"dns-ish", ("127.0.0.1", env["ports"]["udpfwd"]))
    assert u.recvfrom(2048)[0] == b"dns-ish"
    u.close()


def test_wrong_auth_is_reported_and_exits(env):
    path = env["tmp"] / "bad.yaml"
    path.write_text(yaml.safe_dump({"server": env["node"].config["listen"], "auth": "wrong",
                                    "tls": {"insecure": True},
                                    "socks5": {"listen": f"127.0.0.1:{free_tcp_port()}"}}))
    out = subprocess.run([sys.executable, "-m", "fastpath", "client", "-c", str(path)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "authentication failed" in out.stderr


def test_bad_client_config_is_one_line(env):
    path = env["tmp"] / "typo.yaml"
    path.write_text(yaml.safe_dump({"server": "127.0.0.1:1", "sock5": {"listen": ":1080"}}))
    out = subprocess.run([sys.executable, "-m", "fastpath", "client", "-c", str(path)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert out.stderr.strip() == "fastpath client: config error: sock5: unknown key"


def test_a_key_written_twice_in_a_client_config_is_refused(env):
    """As for the node's config: the second ``auth`` would silently win otherwise."""
    path = env["tmp"] / "twice.yaml"
    path.write_text("server: 127.0.0.1:1\nauth: first\nauth: second\n")
    out = subprocess.run([sys.executable, "-m", "fastpath", "client", "-c", str(path)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2, out.stderr
    line = out.stderr.strip()
    assert line.startswith(f"fastpath client: {path} is not valid YAML") and "auth" in line, line
    assert "\n" not in line
