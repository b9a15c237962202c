"""``fastpath client`` as a real process: why it cannot start, in one line and exit code 1 (a
taken local port, a server that does not answer, a certificate that does not verify, a wrong
password), and what it does when a later reconnect is refused (it stays up, each request fails
with the reason logged, and it serves again once the server accepts; SIGTERM then exits 0)."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml

from tests.hy2.conftest import default_secret, hy2_node
from tests.hy2.targets import TargetThread, echo_handler
from tests.support.node import NodeProcess, free_tcp_port, free_udp_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with hy2_node(tmp_path_factory, "client-start") as n:
        yield n


@pytest.fixture(scope="module")
def echo():
    targets = TargetThread()
    port = targets.tcp(echo_handler)
    yield port
    targets.close()


def client_run(tmp_path, config: dict, timeout: float = 30):
    path = tmp_path / "client.yaml"
    path.write_text(yaml.safe_dump(config))
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "fastpath", "client", "-c", str(path)],
                         capture_output=True, text=True, timeout=timeout)
    return out, time.monotonic() - started


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "Task was destroyed" not in stderr
    return lines[0]


def test_a_taken_local_port_is_one_line_naming_it(tmp_path, node):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        out, _ = client_run(tmp_path, {"server": node.config["listen"], "auth": node.secret,
                                       "tls": {"insecure": True},
                                       "socks5": {"listen": f"127.0.0.1:{port}"}})
    finally:
        holder.close()
    assert out.returncode == 1, out
    line = one_line(out.stderr)
    assert line == (f"fastpath client: cannot listen on 127.0.0.1:{port} (socks5.listen): the port "
                    "is in use by another program"), line


def test_a_taken_forwarding_port_names_its_key(tmp_path, node, echo):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        out, _ = client_run(tmp_path, {
            "server": node.config["listen"], "auth": node.secret, "tls": {"insecure": True},
            "tcpForwarding": [{"listen": f"127.0.0.1:{free_tcp_port()}", "remote": f"127.0.0.1:{echo}"},
                              {"listen": f"127.0.0.1:{port}", "remote": f"127.0.0.1:{echo}"}]})
    finally:
        holder.close()
    assert out.returncode == 1
    assert f"127.0.0.1:{port} (tcpForwarding[1].listen)" in one_line(out.stderr)


def test_an_unreachable_server_is_one_line_within_3_seconds(tmp_path):
    """Nothing listens on the UDP port: the first connection gives up after 3 s (the process
    start, about a second of Python imports, comes on top)."""
    port = free_udp_port()
    out, elapsed = client_run(tmp_path, {"server": f"127.0.0.1:{port}", "auth": "x",
                                         "tls": {"insecure": True},
                                         "socks5": {"listen": f"127.0.0.1:{free_tcp_port()}"}})
    assert out.returncode == 1, out
    line = one_line(out.stderr)
    assert line.startswith(f"fastpath client: no answer from 127.0.0.1:{port} within 3s"), line
    assert elapsed < 3 + 4, elapsed


def test_a_certificate_that_does_not_verify_is_one_line(tmp_path, node):
    """The node's self-signed certificate with verification on and no ``tls.ca``: refused by
    the TLS check, reported once (not retried), exit 1."""
    out, elapsed = client_run(tmp_path, {"server": node.config["listen"], "auth": node.secret,
                                         "socks5": {"listen": f"127.0.0.1:{free_tcp_port()}"}})
    assert out.returncode == 1, out
    line = one_line(out.stderr)
    assert line.startswith("fastpath client: the server's certificate does not verify ("), line
    assert "tls.ca" in line and "tls.insecure" in line
    assert elapsed < 10
    # With the node's certificate as tls.ca the same config starts.
    ok_port = free_tcp_port()
    cfg = {"server": node.config["listen"], "auth": node.secret,
           "tls": {"ca": str(node.data_dir / "tls" / "node.crt"), "sni": "localhost"},
           "socks5": {"listen": f"127.0.0.1:{ok_port}"}}
    with ClientProcess(tmp_path, cfg, ok_port) as client:
        assert client.proc.poll() is None


def test_a_wrong_password_is_one_line(tmp_path, node):
    out, _ = client_run(tmp_path, {"server": node.config["listen"], "auth": "wrong-secret",
                                   "tls": {"insecure": True},
                                   "socks5": {"listen": f"127.0.0.1:{free_tcp_port()}"}})
    assert out.returncode == 1
    assert one_line(out.stderr) == ("fastpath client: authentication failed (server answered HTTP "
                                    "404); check 'auth' in the config")


class ClientProcess:
    """A running ``fastpath client`` whose TCP forward or SOCKS port is ``port``."""

    def __init__(self, tmp_path, config: dict, port: int):
        self.path = tmp_path / "running.yaml"
        self.path.write_text(yaml.safe_dump(config))
        self.log_path = tmp_path / "running.log"
        self.port = port

    def __enter__(self):
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "fastpath", "client", "-c", str(self.path)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.text()
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(self.text())

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(10)
        finally:
            self.log.close()

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill() if exc[0] else None
        self.stop()


def echo_once(port: int, payload: bytes = b"ping", timeout: float = 5) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        s.settimeout(timeout)
        s.sendall(payload)
        got = b""
        try:
            while len(got) < len(payload):
                data = s.recv(65536)
                if not data:
                    break
                got += data
        except OSError:
            pass
        return got


def test_a_later_auth_failure_keeps_the_client_up_and_it_recovers(tmp_path, node, echo):
    """Decision (as the reference): a refused reconnect does not end the client.  The user is
    disabled while connected: the connection closes, reconnects are refused, requests through
    the forward fail (the log says why), the process stays up; enabled again, the next request
    works; SIGTERM exits 0 without asyncio's 'Task was destroyed' noise."""
    r = node.post("/api/v1/users", {"id": "later", "auth_secret": "secret-later"})
    assert r.status == 201, r.text
    fwd = free_tcp_port()
    cfg = {"server": node.config["listen"], "auth": "secret-later", "tls": {"insecure": True},
           "tcpForwarding": [{"listen": f"127.0.0.1:{fwd}", "remote": f"127.0.0.1:{echo}"}]}
    with ClientProcess(tmp_path, cfg, fwd) as client:
        assert echo_once(fwd) == b"ping"
        assert node.request("PATCH", "/api/v1/users/later", {"enabled": False}).status == 200
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "authentication failed" not in client.text():
            time.sleep(0.2)
        assert "authentication failed (server answered HTTP 404)" in client.text(), client.text()
        assert echo_once(fwd, timeout=15) == b""          # the request fails ...
        assert client.proc.poll() is None                  # ... and the client is still up
        assert node.request("PATCH", "/api/v1/users/later", {"enabled": True}).status == 200
        deadline = time.monotonic() + 40
        got = b""
        while time.monotonic() < deadline and got != b"ping":
            got = echo_once(fwd, timeout=15)
            if got != b"ping":
                time.sleep(0.5)
        assert got == b"ping", client.text()
        code = client.stop()
    assert code == 0
    log = client.text()
    assert "Task was destroyed" not in log and "Traceback" not in log, log


def test_an_idle_forwarded_connection_outlives_the_idle_timeout(tmp_path, echo):
    """Keep-alive (issue 13): the idle timeout is shortened to 4 s on both ends to keep the test
    fast (the defaults are a 30 s idle timeout and a PING every 10 s; the client caps its period
    at half the idle timeout, so here it pings every 2 s).  A TCP connection through the
    client's forward stays idle for 12 s (three idle timeouts) and then still echoes, over the
    same QUIC connection.  The control: a client without keep-alive, same node, same idle
    timeout, loses its connection to the idle timeout."""
    import asyncio

    from fastpath.hy2.client.client import Hy2Client
    from fastpath.hy2.config import ClientSettings, QuicSettings
    from fastpath.worker.event_loop import run

    (tmp_path / "n").mkdir()
    with NodeProcess(tmp_path / "n", {"quic": {"maxIdleTimeout": "4s"}}) as node:
        secret = default_secret(node.data_dir)
        fwd = free_tcp_port()
        cfg = {"server": node.config["listen"], "auth": secret, "tls": {"insecure": True},
               "quic": {"maxIdleTimeout": "4s", "keepAlivePeriod": "10s"},
               "tcpForwarding": [{"listen": f"127.0.0.1:{fwd}", "remote": f"127.0.0.1:{echo}"}]}
        (tmp_path / "c").mkdir()
        with ClientProcess(tmp_path / "c", cfg, fwd) as client:
            with socket.create_connection(("127.0.0.1", fwd), 5) as s:
                s.settimeout(10)
                s.sendall(b"before")
                assert s.recv(64) == b"before"
                time.sleep(12)
                s.sendall(b"after-idle")
                assert s.recv(64) == b"after-idle"
            assert client.proc.poll() is None
            assert client.stop() == 0
        log = client.text()
        assert "connection to the server closed" not in log and "Idle" not in log, log
        assert log.count("connected to") == 1, log

        async def without_keep_alive():
            host, port = node.config["listen"].rsplit(":", 1)
            c = Hy2Client(ClientSettings(server_host=host, server_port=int(port), auth=secret,
                                         insecure=True,
                                         quic=QuicSettings(max_idle_timeout=4.0, keep_alive_period=None)))
            conn = await asyncio.wait_for(c.ensure_connected(), 10)
            await asyncio.wait_for(conn.terminated.wait(), 8)   # closed by the idle timeout
            await c.close()
            return conn.closed
        assert run(without_keep_alive()) is True
