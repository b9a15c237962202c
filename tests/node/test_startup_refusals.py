"""``fastpath serve`` refuses what would silently break (issue 13), as a real process: a port
another process holds (Hysteria 2 UDP, media TCP, control TCP) and a certificate that does not
load end the node with one line and a non-zero exit, before any child starts; the node's own
workers still share their ports (two workers serve)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import yaml

from tests.support.node import NodeProcess, free_tcp_port, free_udp_port

pytestmark = pytest.mark.integration

HOLDER = textwrap.dedent("""
    import socket, sys, time
    kind = socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM
    s = socket.socket(socket.AF_INET, kind)
    # SO_REUSEPORT as a second node's workers would set it: the node must still see the port taken.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", int(sys.argv[2])))
    if kind == socket.SOCK_STREAM:
        s.listen(8)
    print("bound", flush=True)
    time.sleep(120)
""")


class Holder:
    """Another process that holds a port (with SO_REUSEPORT)."""

    def __init__(self, proto: str, port: int):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, proto, str(port)],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "bound"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait(5)


def serve(tmp_path, config: dict, timeout: float = 40):
    """Run ``fastpath serve`` to its end; (exit code, stderr, stdout, seconds)."""
    cfg = {"node": {"workers": 1}, "counters": {"slotsPerShard": 4096},
           "control": {"listen": f"127.0.0.1:{free_tcp_port()}"},
           "listen": f"127.0.0.1:{free_udp_port()}",
           "media": {"listen": f"127.0.0.1:{free_tcp_port()}"}}
    for key, value in config.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(cfg))
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "fastpath", "serve", "-c", str(path),
                          "--data-dir", str(tmp_path / "data")],
                         capture_output=True, text=True, timeout=timeout)
    return out.returncode, out.stderr, out.stdout, time.monotonic() - started


def single_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("what,proto,key", [
    ("listen (Hysteria 2)", "udp", "listen"),
    ("media.listen", "tcp", "media"),
    ("control.listen", "tcp", "control"),
])
def test_a_port_another_process_holds_refuses_the_node(tmp_path, what, proto, key):
    port = free_udp_port() if proto == "udp" else free_tcp_port()
    address = f"127.0.0.1:{port}"
    config = {"listen": address} if key == "listen" else {key: {"listen": address}}
    with Holder(proto, port) as holder:
        code, err, out, elapsed = serve(tmp_path, config)
        pid = holder.proc.pid
    assert code == 1, (code, err, out)
    line = single_line(err)
    assert line.startswith(f"fastpath: cannot start: {proto.upper()} {address} ({what}) is already "
                           f"in use by pid {pid} ("), line
    assert "-c" in line            # the holder's command line, as far as the system tells
    assert elapsed < 15
    # Nothing was started: no first-start banner, no child output.
    assert "serving" not in out and "token" not in out.lower(), out
    assert not (tmp_path / "data" / "secrets.json").exists()


def test_own_workers_still_share_the_ports(tmp_path):
    """The check binds without SO_REUSEPORT and lets go: two workers of one node start."""
    with NodeProcess(tmp_path, {}, workers=2) as node:
        health = node.get("/api/v1/health").json()
        assert node.proc.poll() is None
    assert health


@pytest.mark.parametrize("cert_text,key_kind,words", [
    ("not a certificate\n", "good", "holds no PEM certificate"),
    (None, "garbage", "holds no PEM private key"),
    (None, "other", "is not the key of the certificate"),
])
def test_a_bad_certificate_ends_the_node_with_one_line(tmp_path, cert_text, key_kind, words):
    from fastpath.supervisor.bootstrap import make_self_signed
    cert_pem, key_pem = make_self_signed(["localhost", "127.0.0.1"])
    cert, key = tmp_path / "node.crt", tmp_path / "node.key"
    cert.write_text(cert_text) if cert_text is not None else cert.write_bytes(cert_pem)
    if key_kind == "good":
        key.write_bytes(key_pem)
    elif key_kind == "garbage":
        key.write_text("garbage\n")
    else:
        key.write_bytes(make_self_signed(["localhost"])[1])
    os.chmod(key, 0o600)
    code, err, out, elapsed = serve(tmp_path, {"tls": {"cert": str(cert), "key": str(key)}})
    assert code == 1, (code, err, out)
    line = single_line(err)
    assert line.startswith("fastpath: cannot start: tls.") and words in line, line
    assert elapsed < 15
    assert "serving" not in out, out


def test_an_unreadable_certificate_names_the_file(tmp_path):
    missing = tmp_path / "nowhere.crt"
    key = tmp_path / "k.key"
    key.write_text("x")
    code, err, _out, _ = serve(tmp_path, {"tls": {"cert": str(missing), "key": str(key)}})
    assert code != 0
    line = single_line(err)
    assert str(missing) in line and "tls.cert" in line, line
