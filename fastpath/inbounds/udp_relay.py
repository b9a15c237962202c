"""UDP for the proxy inbounds (SOCKS5 UDP ASSOCIATE, Shadowsocks AEAD and 2022): one
``UdpRelay`` per client session, counted on a UDP-session slot of the user as Hysteria 2's UDP
is (payload bytes: sent as tx, replies as rx), held to the user's cap, and leaving through the
exit route of the session when it has one (a rule's for the first datagram's destination, the
listener's ``exit_via`` or the user's exit: the worker's egress, ``fastpath.mesh.udp.MeshUdp``
as on the Hysteria 2 path; never sent from here then).

Per datagram in Python: the inbounds' UDP is a side path beside the compiled TCP splice (the
protocols' per-packet crypto and addressing are Python objects already); a compiled pump like
Hysteria 2's ``udp_pump`` is left for when a benchmark asks for it.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time

from fastpath.mesh.egress import target_host
from fastpath.mesh.paths import join_address, split_address
from fastpath.shm import KIND_UDP_SESSION, STATE_ESTAB

log = logging.getLogger("fastpath.inbounds")

IDLE_SECONDS = 60.0            # a session with no packet either way this long is closed
RESOLVE_CACHE = 64             # names remembered per session
MAX_DATAGRAM = 65507
BURST = 64                     # datagrams read from a target socket per readiness event


class _Socket:
    """A session's UDP socket toward its targets (one per address family).  Read on readiness,
    up to ``BURST`` datagrams per event (asyncio's datagram transport reads one per event and
    per loop pass), so the replies of one burst can leave in one write of the client's stream
    (the relay's ``on_burst``).  Sent without a buffer: a datagram the kernel will not take now
    is dropped, as UDP may be."""

    def __init__(self, relay: "UdpRelay", family: int) -> None:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
            relay.loop.add_reader(sock.fileno(), self._readable)
        except BaseException:
            sock.close()
            raise
        self.relay = relay
        self.sock = sock

    def _readable(self) -> None:
        relay, recv = self.relay, self.sock.recvfrom
        for _ in range(BURST):
            try:
                data, addr = recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.debug("inbound UDP: %s", exc)
                break
            relay._from_target(join_address(addr[0], addr[1]), data)
            if relay.closed:
                return
        if relay.on_burst is not None:
            relay.on_burst()

    def sendto(self, payload: bytes, addr) -> bool:
        try:
            self.sock.sendto(payload, addr)
            return True
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            log.debug("inbound UDP: to %s: %s", addr[0], exc)
            return False

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.relay.loop.remove_reader(self.sock.fileno())
            self.sock.close()


class _ExitOwner:
    """What ``MeshUdp`` calls back: replies arrive here (it counted them already)."""

    def __init__(self, relay: "UdpRelay") -> None:
        self.relay = relay

    @property
    def closed(self) -> bool:
        return self.relay.closed

    def send_fragmented(self, _session_id, address: str, payload: bytes) -> int:
        self.relay._deliver(address, payload)
        return 1

    def want_transmit(self) -> None:
        pass


class UdpRelay:
    """A user's UDP session toward any targets.  ``on_reply(address, payload)`` carries a
    target's answer back in the protocol's framing; ``on_burst()``, when given, is told after
    the replies read in one readiness event (a stream framing flushes its writes there);
    ``on_close(relay)`` is told once."""

    def __init__(self, core, user_id, peer: str, on_reply, on_close=None, on_burst=None) -> None:
        self.core = core
        self.user_id = user_id
        self.on_reply = on_reply
        self.on_close = on_close
        self.on_burst = on_burst
        self.closed = False
        self.last = time.monotonic()
        self.sockets: dict[int, _Socket] = {}
        self.names: dict[str, str] = {}
        self.loop = asyncio.get_running_loop()
        self.conn_slot, self.slot = core._open_slots(user_id, peer, "udp", KIND_UDP_SESSION)
        if self.slot >= 0:
            core.counters.set_state(self.slot, STATE_ESTAB)
        self.exit = None
        self.routed = False        # the route is decided by the first datagram's destination
        core.udp_live.add(self)

    # -- budget and counting ---------------------------------------------------------------------
    def _fits(self, n: int) -> bool:
        """Whether ``n`` more bytes fit the user's cap; past it the user's connections end."""
        if self.slot < 0:
            return True
        left = self.core.counters.budget(self.slot)
        if left is None or left >= n:
            return True
        self.core._budget_user(self.user_id)
        self.close("traffic limit reached")
        return False

    # -- client -> target ---------------------------------------------------------------------------
    def send(self, address: str, payload: bytes) -> None:
        if self.closed or not self._fits(len(payload)):
            return
        self.last = time.monotonic()
        if not self.routed:
            self.routed = True
            core = self.core
            route = core.route_of(self.user_id, target_host(address))
            if route is not None:
                self.exit = core.egress.udp(self.loop, _ExitOwner(self), 0, route,
                                            core.counters if self.slot >= 0 else None, self.slot)
        if self.exit is not None:
            self.exit.send(address, payload)         # counted there, as on Hysteria 2
            return
        try:
            host, port = split_address(address)
        except ValueError:
            return
        resolved = self.names.get(host)
        try:
            ip = ipaddress.ip_address(resolved or host)
        except ValueError:
            self.loop.create_task(self._resolve_and_send(host, port, payload))
            return
        self._send_to(str(ip), port, payload)

    async def _resolve_and_send(self, host: str, port: int, payload: bytes) -> None:
        try:
            infos = await self.loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            log.debug("inbound UDP: resolving %s: %s", host[:64], exc)
            return
        ip = infos[0][4][0]
        if len(self.names) >= RESOLVE_CACHE:
            self.names.clear()
        self.names[host] = ip
        if not self.closed:
            self._send_to(ip, port, payload)

    def _send_to(self, ip: str, port: int, payload: bytes) -> None:
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        sock = self.sockets.get(family)
        if sock is None:
            try:
                sock = self.sockets[family] = _Socket(self, family)
            except OSError as exc:
                log.debug("inbound UDP: no socket: %s", exc)
                return
        if sock.sendto(payload, (ip, port)) and self.slot >= 0:
            self.core.counters.count(self.slot, len(payload), 0)

    # -- target -> client ---------------------------------------------------------------------------
    def _from_target(self, address: str, payload: bytes) -> None:
        if self.closed or not self._fits(len(payload)):
            return
        if self.slot >= 0:
            self.core.counters.count(self.slot, 0, len(payload))
        self._deliver(address, payload)

    def _deliver(self, address: str, payload: bytes) -> None:
        if self.closed:
            return
        self.last = time.monotonic()
        try:
            self.on_reply(address, payload)
        except Exception:
            log.exception("inbound UDP: a reply could not be sent back")

    # -- end ------------------------------------------------------------------------------------------
    def idle(self, now: float) -> bool:
        return now - self.last > IDLE_SECONDS

    def close(self, reason: str = "closed") -> None:
        if self.closed:
            return
        self.closed = True
        self.core.udp_live.discard(self)
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()
        if self.exit is not None:
            self.exit.close()
        self.core._close_slots((self.conn_slot, self.slot))
        log.debug("inbound %s: UDP session of %s ended: %s", self.core.settings.tag, self.user_id, reason)
        if self.on_close is not None:
            self.on_close(self)
