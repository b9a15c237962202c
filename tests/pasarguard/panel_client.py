"""The panel's own client, run in a Python 3.12 venv, and a node with a ``pasarguard`` section.

``panel_python()`` makes (once) ``<repo>/.venv-pg312`` with ``pasarguard-node-bridge`` in it;
``PanelDriver`` runs ``panel_driver.py`` there and talks to it over stdin/stdout JSON lines.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("FASTPATH_PG_VENV", REPO / ".venv-pg312"))
BRIDGE = "pasarguard-node-bridge==0.9.4"
DRIVER = Path(__file__).with_name("panel_driver.py")
PY312_CANDIDATES = ("/root/.pyenv/versions/3.12.1/bin/python", "python3.12")


class PanelClientUnavailable(Exception):
    """No Python 3.12 on this machine: the panel's client cannot run."""


def find_python312() -> str | None:
    override = os.environ.get("FASTPATH_PY312")
    for candidate in ((override,) if override else ()) + PY312_CANDIDATES:
        path = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if path and os.path.exists(path):
            return path
    return None


def panel_python() -> str:
    """The 3.12 interpreter of the venv holding the panel's client (made on first use)."""
    python = VENV / "bin" / "python"
    marker = VENV / ".bridge"
    if python.exists() and marker.exists() and marker.read_text().strip() == BRIDGE:
        return str(python)
    base = find_python312()
    if base is None:
        raise PanelClientUnavailable("no Python 3.12 found (set FASTPATH_PY312); the PasarGuard panel's "
                                     "client needs it")
    VENV.mkdir(parents=True, exist_ok=True)
    with open(VENV / ".lock", "w") as lock:      # two test sessions never build it at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists() and marker.exists() and marker.read_text().strip() == BRIDGE:
            return str(python)
        if not python.exists():
            subprocess.run([base, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", BRIDGE],
                       check=True)
        marker.write_text(BRIDGE + "\n")
    return str(python)


class DriverError(Exception):
    def __init__(self, code, detail):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class PanelDriver:
    def __init__(self, log_path: Path | None = None):
        self.log_path = log_path
        stderr = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen([panel_python(), str(DRIVER)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1)
        self._ids = 0

    def call(self, op: str, **args):
        """The op's result; a refused call raises DriverError(code, detail)."""
        self._ids += 1
        self.proc.stdin.write(json.dumps({"id": self._ids, "op": op, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"panel driver exited ({self.proc.poll()}); see {self.log_path}")
        answer = json.loads(line)
        if not answer["ok"]:
            raise DriverError(answer["error"]["code"], answer["error"]["detail"])
        return answer["result"]

    def error(self, op: str, **args) -> DriverError:
        """Call an op that must fail; returns its error."""
        try:
            result = self.call(op, **args)
        except DriverError as exc:
            return exc
        raise AssertionError(f"{op} succeeded: {result!r}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def pasarguard_section(api_key: str | None = None, *, grpc: bool = True) -> dict:
    from tests.support.node import free_tcp_port
    section = {"listen": f"127.0.0.1:{free_tcp_port()}",
               "apiKey": api_key or str(uuid.uuid4())}
    if grpc:
        section["grpcListen"] = f"127.0.0.1:{free_tcp_port()}"
    return section


def wait_tls_port(port: int, timeout: float = 20.0, node=None) -> None:
    """Wait until the face accepts TLS connections on ``port``."""
    deadline = time.monotonic() + timeout
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    last = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                with ctx.wrap_socket(sock):
                    return
        except OSError as exc:
            last = exc
            time.sleep(0.1)
    raise TimeoutError(f"PasarGuard face not up on {port}: {last}\n{node.log() if node else ''}")
