"""Before any child starts: is every port of this node free of other processes?

The data-plane workers bind the Hysteria 2 (UDP) and media (TCP) ports with ``SO_REUSEPORT`` so
the kernel spreads load over them.  The same option lets an unrelated process that also sets it
(a second node with the same ``listen``) share the port, and requests land on either at random.
So the supervisor first binds each port itself **without** ``SO_REUSEPORT``: that bind fails
while anyone else holds the port, whatever options they used.  The probe sockets are closed at
once; the node's own workers then share the port as before.  A taken port is refused with one
line naming the port and, when the system tells, the process that holds it.
"""
from __future__ import annotations

import errno
import socket
import time
from dataclasses import dataclass

WILDCARDS = ("0.0.0.0", "::", "")
# A holder that is one of our own children left over from a crashed supervisor gets this long
# to go (they receive SIGTERM when their parent dies, and stop within a few seconds).
ORPHAN_GRACE_SECONDS = 6.0


@dataclass(frozen=True)
class Port:
    what: str               # the config key, e.g. "listen (Hysteria 2)"
    host: str
    port: int
    proto: str              # "tcp" or "udp"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.proto.upper()} {host}:{self.port}"


class PortInUse(Exception):
    def __init__(self, port: Port, holder: str | None):
        self.port, self.holder = port, holder
        by = f" by {holder}" if holder else " by another process"
        super().__init__(f"{port} ({port.what}) is already in use{by}")


def node_ports(config) -> list[Port]:
    """Every port this node's children will listen on, from its parsed config."""
    ports: list[Port] = []
    hy2 = config.sections.get("hysteria")
    if hy2 is not None and getattr(hy2, "listen", None):
        ports.append(Port("listen (Hysteria 2)", *hy2.listen, "udp"))
    media = config.sections.get("media")
    if media is not None and getattr(media, "enabled", False):
        ports.append(Port("media.listen", *media.listen, "tcp"))
    for inbound in config.sections.get("inbounds") or []:
        ports.append(Port(f"inbounds ({inbound.tag})", *inbound.listen, "tcp"))
        if inbound.type == "shadowsocks":           # Shadowsocks UDP on the same port
            ports.append(Port(f"inbounds ({inbound.tag})", *inbound.listen, "udp"))
    ports.append(Port("control.listen", config.control.host, config.control.port, "tcp"))
    if config.traffic_stats.listen:
        ports.append(Port("trafficStats.listen", *config.traffic_stats.listen, "tcp"))
    pg = config.sections.get("pasarguard")
    if pg:
        ports.append(Port("pasarguard.listen", *pg.listen, "tcp"))
        if getattr(pg, "grpc_listen", None):
            ports.append(Port("pasarguard.grpcListen", *pg.grpc_listen, "tcp"))
    return [p for p in ports if p.port]


def _probe(port: Port) -> OSError | None:
    """Bind ``port`` exclusively; None when that worked (the port is free)."""
    family = socket.AF_INET6 if ":" in port.host else socket.AF_INET
    kind = socket.SOCK_STREAM if port.proto == "tcp" else socket.SOCK_DGRAM
    try:
        sock = socket.socket(family, kind)
    except OSError as exc:
        return exc
    try:
        if family == socket.AF_INET6 and port.host in WILDCARDS:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        if kind == socket.SOCK_STREAM:
            # Old connections in TIME_WAIT do not hold a TCP port (the children set it too);
            # on UDP SO_REUSEADDR would let two sockets share the port, so not there.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((port.host, port.port))
        if kind == socket.SOCK_STREAM:
            sock.listen(1)
        return None
    except OSError as exc:
        return exc
    finally:
        sock.close()


def _same_address(a: str, b: str) -> bool:
    a, b = a.removeprefix("::ffff:"), b.removeprefix("::ffff:")
    return a == b or a in WILDCARDS or b in WILDCARDS


def holder_of(port: Port):
    """The psutil Process holding ``port``, or None when unknown (another user's process seen
    without privileges, or psutil missing)."""
    try:
        import psutil
    except ImportError:
        return None
    try:
        conns = psutil.net_connections(kind=port.proto)
    except (psutil.Error, OSError):
        return None
    for c in conns:
        if not c.laddr or c.laddr.port != port.port or c.pid is None:
            continue
        if port.proto == "tcp" and c.status != psutil.CONN_LISTEN:
            continue
        if _same_address(c.laddr.ip, port.host):
            try:
                return psutil.Process(c.pid)
            except psutil.Error:
                return None
    return None


def _describe(proc) -> str | None:
    if proc is None:
        return None
    try:
        cmd = " ".join(proc.cmdline()) or proc.name()
    except Exception:
        return f"pid {proc.pid}"
    # One line whatever the holder's arguments hold (``python -c`` with a script has newlines).
    cmd = " ".join(cmd.split())
    if len(cmd) > 120:
        cmd = cmd[:117] + "..."
    return f"pid {proc.pid} ({cmd})"


def _is_orphaned_child_of_ours(proc) -> bool:
    """A worker or API process of a crashed fastpath supervisor, about to exit."""
    if proc is None:
        return False
    try:
        cmd = " ".join(proc.cmdline())
        return proc.ppid() == 1 and any(m in cmd for m in ("fastpath.worker", "fastpath.control.server",
                                                          "fastpath.control.pasarguard.server"))
    except Exception:
        return False


def check_ports(ports: list[Port], *, grace: float = ORPHAN_GRACE_SECONDS) -> None:
    """Raise PortInUse for the first port another process holds (waiting a little while the
    holder is a leftover child of a crashed node); other bind errors raise OSError."""
    for port in ports:
        deadline = time.monotonic() + grace
        while True:
            err = _probe(port)
            if err is None:
                break
            if err.errno != errno.EADDRINUSE:
                raise OSError(err.errno, f"{port} ({port.what}): {err.strerror}")
            proc = holder_of(port)
            if _is_orphaned_child_of_ours(proc) and time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            raise PortInUse(port, _describe(proc))
