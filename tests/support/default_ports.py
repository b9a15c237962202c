"""Tests that run a node on its built-in default ports (9480, 8443/udp, 8085) take turns.

A node now refuses ports another process holds, so two such tests at once would fail each
other; a file lock (shared by every test process on the machine) serialises them.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import tempfile

DEFAULT_PORTS = (("tcp", 9480), ("udp", 8443), ("tcp", 8085))


@contextlib.contextmanager
def default_ports_lock():
    path = os.path.join(tempfile.gettempdir(), "fastpath-default-ports.lock")
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def assert_default_ports_free() -> None:
    for proto, port in DEFAULT_PORTS:
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, kind) as s:
            if proto == "tcp":
                # A previous test's connections in TIME_WAIT do not hold the port (the node's
                # own check, fastpath/supervisor/port_check.py, ignores them the same way).
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("0.0.0.0", port))
                if proto == "tcp":
                    s.listen(1)
            except OSError:
                raise AssertionError(f"{proto} port {port} is taken by another process") from None
