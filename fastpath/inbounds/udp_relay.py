"""UDP for the proxy inbounds (SOCKS5 UDP ASSOCIATE, Shadowsocks AEAD and 2022): one
``UdpRelay`` per client session, counted on a UDP-session slot of the user as Hysteria 2's UDP
is (payload bytes: sent as tx, replies as rx), held to the user's cap, and leaving through the
exit route of the session when it has one (a rule's for the first datagram's destination, the
listener's ``exit_via`` or the user's exit: the worker's egress, ``fastpath.mesh.udp.MeshUdp``
as on the Hysteria 2 path; never sent from here then).

The target side is compiled (``udp_targets.UdpTargets``): the datagrams that one read of the
client's stream (or one client datagram) delivered are queued and leave in one ``sendmmsg`` on
the next loop pass; a target socket's readiness is one ``recvmmsg``; both counted and held to
the cap in C, datagram by datagram.  What stays here is per session: the route, names, the
kick and the end.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import time

from fastpath.inbounds.udp_targets import NEEDS_RESOLVING, OVER_BUDGET, UdpTargets
from fastpath.mesh.egress import target_host
from fastpath.mesh.paths import join_address, split_address
from fastpath.shm import KIND_UDP_SESSION, STATE_ESTAB

log = logging.getLogger("fastpath.inbounds")

IDLE_SECONDS = 60.0            # a session with no packet either way this long is closed
RESOLVE_CACHE = 64             # names remembered per session
CUT = ("kicked", "traffic limit reached", "inbound closed")   # ends that drop what is queued


class _Socket:
    """A session's UDP socket toward its targets (one per address family), read on readiness
    with one ``recvmmsg`` (``UdpTargets.recv``), so the replies of one burst leave in one write
    of the client's stream (the relay's ``on_burst``)."""

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
        self.family = family
        relay.targets.attach(family, sock.fileno())

    def _readable(self) -> None:
        relay = self.relay
        targets = relay.targets
        batch = targets.recv(self.sock.fileno())
        for address, payload in batch:
            relay._deliver(address, payload)
            if relay.closed:
                return
        if targets.over_budget:
            relay._over_budget()
            return
        if batch and relay.on_burst is not None:
            relay.on_burst()

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.relay.targets.attach(self.family, -1)
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
        self.targets = UdpTargets(core.counters if self.slot >= 0 else None, self.slot)
        self.flush_due = False
        self.exit = None
        self.routed = False        # the route is decided by the first datagram's destination
        core.udp_live.add(self)

    # -- budget and counting ---------------------------------------------------------------------
    def _fits(self, n: int) -> bool:
        """Whether ``n`` more bytes fit the user's cap (the exit path's datagrams; the targets'
        are held to it in ``UdpTargets``); past it the user's connections end."""
        if self.slot < 0:
            return True
        left = self.core.counters.budget(self.slot)
        if left is None or left >= n:
            return True
        self._over_budget()
        return False

    def _over_budget(self) -> None:
        self.core._budget_user(self.user_id)
        self.close("traffic limit reached")

    # -- client -> target ---------------------------------------------------------------------------
    def send(self, address: str, payload: bytes) -> None:
        if self.closed:
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
            if self._fits(len(payload)):
                self.exit.send(address, payload)         # counted there, as on Hysteria 2
            return
        self._queue(self.names.get(address, address), address, payload)

    def _queue(self, target: str, address: str, payload: bytes) -> None:
        """``payload`` queued toward ``target`` ("ip:port"; ``address`` as the client named it),
        sent on the next loop pass with what else comes before it."""
        result = self.targets.queue(payload, target)
        if result > 0:                              # the first datagram of this family
            try:
                self.sockets[result] = _Socket(self, result)
            except OSError as exc:
                log.debug("inbound UDP: no socket: %s", exc)
                return
            result = self.targets.queue(payload, target)
        if result == 0:
            if not self.flush_due:
                self.flush_due = True
                self.loop.call_soon(self.flush)
        elif result == OVER_BUDGET:
            self._over_budget()
        elif result == NEEDS_RESOLVING and target == address:
            self.loop.create_task(self._resolve_and_send(address, payload))

    def flush(self) -> None:
        self.flush_due = False
        if not self.closed:
            self.targets.flush()

    async def _resolve_and_send(self, address: str, payload: bytes) -> None:
        try:
            host, port = split_address(address)
            infos = await self.loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except (OSError, ValueError) as exc:
            log.debug("inbound UDP: resolving %s: %s", address[:64], exc)
            return
        if len(self.names) >= RESOLVE_CACHE:
            self.names.clear()
        resolved = self.names[address] = join_address(infos[0][4][0], port)
        if not self.closed:
            self._queue(resolved, address, payload)

    # -- target -> client ---------------------------------------------------------------------------
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
        if reason not in CUT:                # what the client sent before its end still leaves
            self.targets.flush()
        for sock in list(self.sockets.values()):
            sock.close()
        self.sockets.clear()
        if self.exit is not None:
            self.exit.close()
        self.core._close_slots((self.conn_slot, self.slot))
        log.debug("inbound %s: UDP session of %s ended: %s", self.core.settings.tag, self.user_id, reason)
        if self.on_close is not None:
            self.on_close(self)
