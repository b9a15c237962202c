"""The outbound side of one UDP session: a UDP socket toward any destination.

One socket per session, as the reference server opens.  Destinations that are names are
resolved once per session and remembered; replies carry their source as "ip:port".
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Callable

MAX_NAMES = 64


def split_address(address: str) -> tuple[str, int]:
    """"host:port" or "[v6]:port" → (host, port); ValueError otherwise."""
    if address.startswith("["):
        host, sep, port = address[1:].partition("]:")
    else:
        host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"bad address {address!r}")
    return host, int(port)


def join_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _literal_ip(host: str):
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class UdpRelay:
    """``send(address, payload)`` toward the target; ``on_reply(address, payload)`` for each
    datagram that comes back."""

    def __init__(self, loop, on_reply: Callable[[str, bytes], None]) -> None:
        self.loop = loop
        self.on_reply = on_reply
        self._socks: dict[int, socket.socket] = {}
        self._names: dict[str, tuple] = {}
        self.closed = False

    def _sock(self, family: int) -> socket.socket:
        sock = self._socks.get(family)
        if sock is None:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
            self._socks[family] = sock
            self.loop.add_reader(sock.fileno(), self._readable, sock)
        return sock

    def send(self, address: str, payload: bytes) -> None:
        if self.closed:
            return
        try:
            host, port = split_address(address)
        except ValueError:
            return
        ip = _literal_ip(host)
        if ip is not None:
            self._sendto(payload, (str(ip), port), ip.version)
            return
        cached = self._names.get(address)
        if cached is not None:
            self._sendto(payload, cached[0], cached[1])
            return
        asyncio.ensure_future(self._resolve_and_send(address, host, port, payload))

    async def _resolve_and_send(self, address, host, port, payload):
        try:
            infos = await self.loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError:
            return
        if not infos or self.closed:
            return
        family, _, _, _, sockaddr = infos[0]
        version = 6 if family == socket.AF_INET6 else 4
        if len(self._names) < MAX_NAMES:
            self._names[address] = (sockaddr[:2], version)
        self._sendto(payload, sockaddr[:2], version)

    def _sendto(self, payload: bytes, addr, version: int) -> None:
        sock = self._sock(socket.AF_INET6 if version == 6 else socket.AF_INET)
        try:
            sock.sendto(payload, addr)
        except OSError:
            pass

    def _readable(self, sock: socket.socket) -> None:
        for _ in range(64):
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            if data and not self.closed:
                self.on_reply(join_address(addr[0], addr[1]), data)

    def close(self) -> None:
        self.closed = True
        for sock in self._socks.values():
            try:
                self.loop.remove_reader(sock.fileno())
            except (ValueError, OSError):
                pass
            sock.close()
        self._socks.clear()
