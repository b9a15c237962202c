"""Start a real ``fastpath serve`` on loopback ports for a test, and stop it.

Usage::

    with NodeProcess(tmp_path, {"listen": f"127.0.0.1:{free_udp_port()}"}) as node:
        node.get("/api/v1/health")
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HttpResult:
    def __init__(self, status: int, headers, body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def http(method: str, url: str, body=None, headers: dict | None = None, timeout: float = 10) -> HttpResult:
    data = None
    headers = dict(headers or {})
    if body is not None:
        if isinstance(body, (bytes, str)):
            data = body.encode() if isinstance(body, str) else body
        else:
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return HttpResult(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as exc:
        return HttpResult(exc.code, exc.headers, exc.read())


class NodeProcess:
    """A supervisor with its workers and control API, on a random control port."""

    def __init__(self, tmp_path: Path, config: dict | None = None, *, workers: int = 1,
                 env: dict | None = None, data_dir: Path | None = None,
                 python: str | None = None, args: list[str] | None = None):
        # ``python``: another tree's interpreter (its venv with that tree installed), for a
        # benchmark's baseline; it runs from the node's directory so this tree is not on its path.
        self.python = python
        self.tmp_path = Path(tmp_path)
        self.data_dir = data_dir or self.tmp_path / "data"
        self.config = dict(config or {})
        self.config.setdefault("node", {}).setdefault("workers", workers)
        control = self.config.setdefault("control", {})
        control.setdefault("listen", f"127.0.0.1:{free_tcp_port()}")
        self.control_port = int(control["listen"].rsplit(":", 1)[1])
        self.config.setdefault("counters", {}).setdefault("slotsPerShard", 4096)
        if "listen" not in self.config:
            self.config["listen"] = f"127.0.0.1:{free_udp_port()}"
        # A port of its own for the media relay too: a node refuses to start on a port another
        # process (another test's node) holds.
        media = self.config.setdefault("media", {})
        if isinstance(media, dict):
            media.setdefault("listen", f"127.0.0.1:{free_tcp_port()}")
        self.config_path = self.tmp_path / "node.yaml"
        self.env = env
        self.args = list(args or [])        # more ``fastpath serve`` options
        self.proc: subprocess.Popen | None = None
        self.log_path = self.tmp_path / "node.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"

    def start(self, timeout: float = 20) -> "NodeProcess":
        self.config_path.write_text(yaml.safe_dump(self.config))
        env = dict(os.environ)
        env.update(self.env or {})
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.python or sys.executable, "-m", "fastpath", "serve", "-c", str(self.config_path),
             "--data-dir", str(self.data_dir), *self.args],
            stdout=self._log, stderr=subprocess.STDOUT, env=env,
            cwd=self.tmp_path if self.python else None)
        try:
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()          # a node that never became healthy must not outlive the test
            raise
        return self

    def wait_healthy(self, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fastpath serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                r = self.get("/api/v1/health", timeout=2)
                last = r.status
                if r.status == 200:
                    return r.json()
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"node not healthy within {timeout}s (last status {last}):\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except OSError:
            return ""

    def request(self, method: str, path: str, body=None, headers=None, timeout: float = 10) -> HttpResult:
        return http(method, self.base_url + path, body, headers, timeout)

    def get(self, path: str, **kw) -> HttpResult:
        return self.request("GET", path, **kw)

    def post(self, path: str, body=None, **kw) -> HttpResult:
        return self.request("POST", path, body, **kw)

    def stop(self, timeout: float = 10) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
