"""A worker's outbound peers: the nodes an exit-routed user's traffic leaves through.

The HY2 SCALE face keeps its "clients" (outbound peers) in the state store, settings row
``hy2scale.clients``.  Each worker holds, per enabled client, one ``ExitPeer``: a Hysteria 2
client per address (``addr`` first, then ``addrs``), connected lazily on first use and by a
health check every few seconds, with exponential backoff after a failed round.  A proxy stream
of a user whose exit is that peer is opened on the peer (``open_stream``) and bridged to the
server's relay pump; a peer that is down, disabled or refuses the target fails the stream with
a message.  Nothing here ever dials the target directly: no traffic leaks around an exit.

UDP of exit-routed users is relayed through one UDP session on the peer per user session
(``fastpath.mesh.udp.MeshUdp``), or dropped while the peer cannot be reached; paths of several
hops, path choice and rules are ``fastpath.mesh``'s.

The worker learns the client list at start and again on the ``peers_changed`` command (the
face broadcasts it after every change); the health check also rereads the row, so a missed
broadcast only delays a change.
"""
from __future__ import annotations

import asyncio
import collections
import json
import logging
import socket
import time

from fastpath.hy2.quic import aioquic_seam
from fastpath.hy2.client.client import (
    BACKOFF_MAX,
    AuthError,
    ConnectError,
    Hy2Client,
    Hy2Error,
)
from fastpath.hy2.config import ClientSettings, QuicSettings
from fastpath.mesh.paths import split_address
from fastpath.store.ledger import CLIENTS_KEY

log = logging.getLogger("fastpath.hy2.exit_peers")

CONNECT_TIMEOUT = 5.0          # one address; a dial must not wait for the client's 10 s
OPEN_TIMEOUT = 8.0             # the peer's answer to a proxy stream request
TICK_SECONDS = 1.0             # rate samples
HEALTH_TICKS = 5               # health check (connect or ping) every this many ticks
RATE_SAMPLES = 6               # rates over the last ~5 s
MBPS = 125_000                 # max_tx / max_rx are in Mbit/s; the client wants bytes/s


class ExitUnavailable(OSError):
    """The exit could not carry this stream; the message says why (sent to the user)."""


def read_clients(store) -> list[dict]:
    raw = store.get_setting(CLIENTS_KEY, []) or []
    return [c for c in raw if isinstance(c, dict) and isinstance(c.get("name"), str)]


def client_settings(entry: dict, addr: str) -> ClientSettings:
    host, port = split_address(addr)
    return ClientSettings(
        server_host=host, server_port=port, auth=str(entry.get("password") or ""),
        sni=entry.get("sni") or None, insecure=bool(entry.get("insecure")), ca=entry.get("ca") or None,
        bandwidth_up=int(entry.get("max_tx") or 0) * MBPS, bandwidth_down=int(entry.get("max_rx") or 0) * MBPS,
        quic=QuicSettings(keep_alive_period=HEALTH_TICKS * TICK_SECONDS))


def peer_addresses(entry: dict) -> list[str]:
    out = []
    for a in [entry.get("addr")] + list(entry.get("addrs") or []):
        if isinstance(a, str) and a and a not in out:
            out.append(a)
    return out


class ExitPeer:
    """One enabled client: its Hysteria 2 connections, health and byte counts."""

    def __init__(self, entry: dict):
        self.entry = entry
        self.name = entry["name"]
        self.addrs = peer_addresses(entry)
        self.clients = []
        for addr in self.addrs:
            try:
                self.clients.append((addr, Hy2Client(client_settings(entry, addr))))
            except ValueError as exc:
                log.warning("exit peer %s: address %r skipped: %s", self.name, addr, exc)
        self.current: Hy2Client | None = None
        self.last_error = ""
        self.failures = 0
        self.retry_at = 0.0
        self._attempt: asyncio.Future | None = None
        self.closed = False
        # Bytes through this peer: the server pumps of its live streams, plus what ended ones
        # carried.  tx = toward the peer (from our users), rx = from the peer.
        self.live: set = set()
        self.done_tx = 0
        self.done_rx = 0
        self.samples: collections.deque = collections.deque(maxlen=RATE_SAMPLES)

    @property
    def connected(self) -> bool:
        return self.current is not None and self.current.connected

    # -- connecting ---------------------------------------------------------------------------
    async def connection(self) -> Hy2Client:
        """A connected client, connecting now if needed; ``ExitUnavailable`` while the peer is
        down (at once inside the backoff window, so a dial does not wait for a dead peer)."""
        if self.closed:
            raise ExitUnavailable(f"exit peer {self.name!r} was removed or disabled")
        if self.connected:
            return self.current
        if self._attempt is None or self._attempt.done():
            if time.monotonic() < self.retry_at:
                raise ExitUnavailable(f"exit peer {self.name!r} is unreachable ({self.last_error}); "
                                      f"not dialing directly")
            self._attempt = asyncio.ensure_future(self._connect())
        return await asyncio.shield(self._attempt)

    async def _connect(self) -> Hy2Client:
        errors = []
        for addr, client in self.clients:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await client.connect()
            except AuthError as exc:
                errors.append(f"{addr}: {exc}")
            except (TimeoutError, Hy2Error, OSError) as exc:
                errors.append(f"{addr}: {exc or type(exc).__name__}")
            else:
                if self.closed:
                    await client.close()
                    break
                self.current = client
                self.failures = 0
                self.last_error = ""
                return client
        self.failures += 1
        self.retry_at = time.monotonic() + min(0.5 * 2 ** (self.failures - 1), BACKOFF_MAX)
        self.last_error = "; ".join(errors) or "no usable address"
        raise ExitUnavailable(f"exit peer {self.name!r} is unreachable ({self.last_error}); "
                              f"not dialing directly")

    async def health(self) -> None:
        """Connect if down (outside the backoff window); if up, ping so the RTT stays fresh."""
        if self.closed:
            return
        if self.connected:
            conn = self.current.conn
            conn.quic.send_ping(0)
            conn.want_transmit()
            return
        try:
            await self.connection()
        except ExitUnavailable:
            pass

    def latency_ms(self) -> float | None:
        if not self.connected:
            return None
        return aioquic_seam.smoothed_rtt_ms(self.current.conn.quic)

    # -- streams ------------------------------------------------------------------------------
    async def open_socket(self, address: str, loop) -> socket.socket:
        """Open ``address`` on the peer: the local end of a Unix socket pair whose other end
        the client's splice carries to the peer's stream (the caller connects its own
        protocol to it, ``open_stream`` the server's relay pump).

        The bridge is a Unix socket pair: the server's relay pump and the client's splice
        both speak to a socket transport (that is where their back-pressure and counting
        live), so one end goes to each and the kernel carries the bytes between them.  It
        costs two extra socket copies per chunk and a little latency (bench/RESULTS.md, HY2
        SCALE: exit vs direct); in exchange neither pump changes and the count stays the
        server pump's, exact as for a direct dial."""
        client = await self.connection()
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        try:
            # b waits with a placeholder protocol: nothing reaches it before a is connected.
            tb, _ = await loop.create_connection(asyncio.Protocol, sock=b)
        except BaseException:
            a.close()
            b.close()
            raise
        try:
            async with asyncio.timeout(OPEN_TIMEOUT):
                await client.relay_tcp(address, tb)
        except ConnectError as exc:
            tb.abort()
            a.close()
            raise ExitUnavailable(f"exit {self.name}: {exc}") from None
        except (TimeoutError, Hy2Error, OSError) as exc:
            tb.abort()
            a.close()
            raise ExitUnavailable(f"exit {self.name}: {exc or type(exc).__name__}; "
                                  f"not dialing directly") from None
        except BaseException:
            tb.abort()
            a.close()
            raise
        return a

    async def open_stream(self, pump, address: str, loop) -> None:
        """Open ``address`` on the peer and connect the server's ``pump`` to it."""
        a = await self.open_socket(address, loop)
        try:
            await loop.create_connection(lambda: pump, sock=a)
        except BaseException:
            a.close()
            raise
        self.live.add(pump)

    # -- byte counts --------------------------------------------------------------------------
    def totals(self) -> tuple[int, int]:
        done = [p for p in self.live if p.finished]
        for p in done:
            self.live.discard(p)
            self.done_tx += p.from_quic_bytes
            self.done_rx += p.from_tcp_bytes
        tx, rx = self.done_tx, self.done_rx
        for p in self.live:
            tx += p.from_quic_bytes
            rx += p.from_tcp_bytes
        return tx, rx

    def sample(self, now: float) -> None:
        tx, rx = self.totals()
        self.samples.append((now, tx, rx))

    def rates(self) -> tuple[int, int]:
        """Bytes/s over the last ~5 s, up to now: the current totals are the last point, so a
        burst that ended since the last sample still shows."""
        if not self.samples:
            return 0, 0
        t0, tx0, rx0 = self.samples[0]
        tx1, rx1 = self.totals()
        dt = time.monotonic() - t0
        if dt <= 0:
            return 0, 0
        return round((tx1 - tx0) / dt), round((rx1 - rx0) / dt)

    def status(self) -> dict:
        tx_rate, rx_rate = self.rates()
        tx, rx = self.totals()
        return {"connected": self.connected, "latency_ms": self.latency_ms(), "tx_rate": tx_rate,
                "rx_rate": rx_rate, "tx_bytes": tx, "rx_bytes": rx, "streams": len(self.live),
                "address": next((a for a, c in self.clients if c is self.current), ""),
                "error": "" if self.connected else self.last_error}

    async def close(self) -> None:
        self.closed = True
        if self._attempt is not None and not self._attempt.done():
            self._attempt.cancel()
        for _addr, client in self.clients:
            try:
                await client.close()
            except Exception:
                log.exception("closing exit peer %s", self.name)


class ExitPeers:
    """Every enabled client of this node, by name, kept in step with the store."""

    def __init__(self, store):
        self.store = store
        self.peers: dict[str, ExitPeer] = {}
        self.known: dict[str, dict] = {}          # every configured client, enabled or not
        self._task: asyncio.Task | None = None
        self._raw = None
        self._checks: set = set()

    def _check(self, peer: ExitPeer) -> None:
        task = asyncio.ensure_future(peer.health())
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def reload(self) -> list[str]:
        """Reread the clients; restart the peers whose entry changed, drop the removed and
        disabled ones.  The names that changed."""
        clients = read_clients(self.store)
        raw = json.dumps(clients, sort_keys=True)
        if raw == self._raw:
            return []
        self._raw = raw
        self.known = {c["name"]: c for c in clients}
        wanted = {c["name"]: c for c in clients if not c.get("disabled")}
        changed = []
        for name, peer in list(self.peers.items()):
            if wanted.get(name) != peer.entry:
                del self.peers[name]
                changed.append(name)
                await peer.close()
        for name, entry in wanted.items():
            if name not in self.peers:
                self.peers[name] = ExitPeer(entry)
                changed.append(name)
                self._check(self.peers[name])
        return sorted(set(changed))

    def peer(self, name: str) -> ExitPeer:
        peer = self.peers.get(name)
        if peer is not None:
            return peer
        entry = self.known.get(name)
        if entry is not None and entry.get("disabled"):
            raise ExitUnavailable(f"exit peer {name!r} is disabled; not dialing directly")
        raise ExitUnavailable(f"exit {name!r} is not a configured peer of this node; not dialing directly")

    async def open_stream(self, name: str, pump, address: str, loop) -> None:
        await self.peer(name).open_stream(pump, address, loop)

    def status(self) -> dict:
        return {name: peer.status() for name, peer in self.peers.items()}

    async def start(self) -> ExitPeers:
        await self.reload()
        self._task = asyncio.ensure_future(self._run())
        return self

    async def _run(self) -> None:
        tick = 0
        while True:
            await asyncio.sleep(TICK_SECONDS)
            tick += 1
            now = time.monotonic()
            for peer in list(self.peers.values()):
                peer.sample(now)
            if tick % HEALTH_TICKS == 0:
                try:
                    await self.reload()
                except Exception:
                    log.exception("exit peers: reload failed")
                for peer in list(self.peers.values()):
                    self._check(peer)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for peer in list(self.peers.values()):
            await peer.close()
        self.peers.clear()
