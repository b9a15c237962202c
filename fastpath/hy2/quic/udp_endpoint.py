"""The UDP socket under QUIC: batched reads, Salamander, and segmentation offload on send.

Each readiness event drains up to ``BATCH`` datagrams and hands them over as one batch, so the
QUIC layer builds its answers once per batch instead of once per packet.  On Linux, runs of
equal-sized packets to one address go out in one ``sendmsg`` with ``UDP_SEGMENT`` (GSO).

``make_endpoint`` picks the compiled ``udp_batch.BatchEndpoint`` (``recvmmsg``/``sendmmsg``,
GRO, Salamander in C) where it is built, and this module's ``UdpEndpoint`` otherwise or with
``FASTPATH_UDP_BATCH=0`` (kept so the two can be compared and as the portable path).
"""
from __future__ import annotations

import errno
import os
import socket
import sys
from typing import Callable

BATCH = 64
RECV_SIZE = 4096
UDP_SEGMENT = 103                 # linux/udp.h
GSO_MAX_SEGMENTS = 64
GSO_MAX_BYTES = 65000
SOCKET_BUFFER = 4 * 1024 * 1024


def make_udp_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6 and host in ("::", ""):
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    if reuse_port and hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
        except OSError:
            pass
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


def make_endpoint(sock: socket.socket, on_batch: Callable[[list], None], obfs=None):
    """The UDP endpoint the server and the client use: the batched one unless it is off
    (``FASTPATH_UDP_BATCH=0``), not built here, or ``obfs`` is not a Salamander.
    ``FASTPATH_HY2_GSO=0`` and ``FASTPATH_UDP_GRO=0`` turn the offloads off one by one."""
    if os.environ.get("FASTPATH_UDP_BATCH", "1") != "0":
        try:
            from fastpath.hy2.quic.udp_batch import BatchEndpoint
        except ImportError:
            pass
        else:
            try:
                gso = None if os.environ.get("FASTPATH_HY2_GSO", "1") != "0" else False
                gro = None if os.environ.get("FASTPATH_UDP_GRO", "1") != "0" else False
                return BatchEndpoint(sock, on_batch, obfs=obfs, gso=gso, gro=gro)
            except TypeError:
                pass
    return UdpEndpoint(sock, on_batch, obfs=obfs)


class UdpEndpoint:
    def __init__(self, sock: socket.socket, on_batch: Callable[[list], None], obfs=None,
                 gso: bool | None = None) -> None:
        self.sock = sock
        self.on_batch = on_batch
        self.obfs = obfs
        if gso is None:
            # FASTPATH_HY2_GSO=0 turns segmentation offload off (a NIC or tunnel that breaks it).
            gso = sys.platform.startswith("linux") and os.environ.get("FASTPATH_HY2_GSO", "1") != "0"
        self.gso = gso
        self._loop = None
        self.dropped = 0

    def start(self, loop) -> None:
        self._loop = loop
        loop.add_reader(self.sock.fileno(), self._readable)

    def close(self) -> None:
        if self._loop is not None:
            try:
                self._loop.remove_reader(self.sock.fileno())
            except (ValueError, OSError):
                pass
            self._loop = None
        self.sock.close()

    @property
    def local_address(self):
        return self.sock.getsockname()

    def _readable(self) -> None:
        recv = self.sock.recvfrom
        obfs = self.obfs
        batch = []
        for _ in range(BATCH):
            try:
                data, addr = recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                # ICMP errors surface here (ECONNREFUSED from a previous send): keep reading.
                continue
            if obfs is not None:
                data = obfs.deobfuscate(data)
                if data is None:
                    continue
            batch.append((data, addr))
        if batch:
            self.on_batch(batch)

    def send(self, datagrams: list) -> None:
        """Send ``[(data, addr), ...]`` as aioquic returns them."""
        obfs = self.obfs
        if obfs is not None:
            datagrams = [(obfs.obfuscate(d), a) for d, a in datagrams]
        if self.gso and len(datagrams) > 1:
            self._send_segmented(datagrams)
            return
        sendto = self.sock.sendto
        for data, addr in datagrams:
            try:
                sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                self.dropped += 1
            except OSError:
                self.dropped += 1

    def _send_segmented(self, datagrams: list) -> None:
        i, n = 0, len(datagrams)
        while i < n:
            data, addr = datagrams[i]
            size = len(data)
            j = i + 1
            total = size
            # A run: same address, same size; the last segment of a run may be shorter.
            while (j < n and j - i < GSO_MAX_SEGMENTS and datagrams[j][1] == addr
                   and total + len(datagrams[j][0]) <= GSO_MAX_BYTES):
                seg = len(datagrams[j][0])
                if seg > size:
                    break
                total += seg
                j += 1
                if seg < size:
                    break
            try:
                if j - i == 1:
                    self.sock.sendto(data, addr)
                else:
                    payload = b"".join(d for d, _ in datagrams[i:j])
                    self.sock.sendmsg([payload], [(socket.SOL_UDP, UDP_SEGMENT,
                                                   size.to_bytes(2, sys.byteorder))], 0, addr)
            except (BlockingIOError, InterruptedError):
                self.dropped += j - i
            except OSError as exc:
                if exc.errno in (errno.EINVAL, errno.ENOPROTOOPT, errno.EIO, errno.EOPNOTSUPP):
                    self.gso = False          # no GSO here: plain sends from now on
                    for d, a in datagrams[i:j]:
                        try:
                            self.sock.sendto(d, a)
                        except OSError:
                            self.dropped += 1
                else:
                    self.dropped += j - i
            i = j
