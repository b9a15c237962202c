"""The Hysteria 2 server's I/O: one UDP socket, QUIC connections, dialing, counting.

The protocol decisions live in ``ServerSession`` (sans I/O); this module reads the socket,
finds each packet's connection by its destination connection ID, runs the authenticator and
the masquerade, dials targets for proxy streams (a ``RelayPump`` each) or opens them along the
stream's exit route and serves the mesh's relay requests (``fastpath.mesh``), relays UDP
sessions and counts everything into the worker's counter shard.  Packets are handled in batches and each
connection transmits once per batch.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random

from aioquic.buffer import Buffer
from aioquic.quic import events as qe
from aioquic.quic.packet import (QuicPacketType, encode_quic_retry, encode_quic_version_negotiation,
                                 pull_quic_header)

from fastpath.hy2.quic import aioquic_seam
from fastpath.hy2.quic.address_validation import RetryTokens
from fastpath.hy2.quic.brutal import install_brutal
from fastpath.hy2.config import ServerSettings
from fastpath.hy2.wire.events import (AuthRequested, HttpRequest, SendStopped, StreamClosed, TcpData, TcpRequested,
                                 Terminated, UdpReceived)
from fastpath.hy2.wire.frames import encode_tcp_response
from fastpath.hy2.server.masquerade import decode_headers, go_writer, not_found
from fastpath.hy2.quic.quic_connection import Hy2QuicConnection, QuicGlue, quic_configuration
from fastpath.hy2.quic.relay_pump import RelayPump
from fastpath.hy2.server.server_session import CLOSE_KICKED, ServerSession
from fastpath.hy2.quic.stateless_reset import StatelessResetter
from fastpath.hy2.quic.udp_endpoint import UdpEndpoint, make_endpoint, make_udp_socket
from fastpath.hy2.server.udp_pump import (ClientDatagrams, UdpPump, begin_batch,
                                           datagram_from_client, end_batch)
from fastpath.mesh.paths import split_address
from fastpath.mesh.egress import target_host
from fastpath.mesh.wire import RELAY_PREFIX, is_control
from fastpath.shm import (KIND_CONNECTION, KIND_TCP_STREAM, KIND_UDP_SESSION, STATE_CONNECT,
                          STATE_ESTAB)
from fastpath.worker.egress import DIRECT, Egress

log = logging.getLogger("fastpath.hy2.server")

HOST_CID_LENGTH = 8
DIAL_TIMEOUT = 10.0
HOUSEKEEPING_SECONDS = 1.0
SPEEDTEST_HOST = "@SpeedTest"


def _expire(task, expired: list) -> None:
    """A dial's deadline: its task is cancelled, marked as by the deadline."""
    expired.append(True)
    task.cancel()


def _peer_text(addr) -> str:
    host, port = addr[0], addr[1]
    if host.startswith("::ffff:"):
        host = host[7:]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ServerConnection(QuicGlue):
    """Glue for one QUIC connection: events in, actions out, timer, pumps and UDP relays."""

    def __init__(self, server: "Hy2Server", quic: Hy2QuicConnection, addr) -> None:
        self.server = server
        self.loop = server.loop
        self.quic = quic
        self.addr = addr
        self.peer = _peer_text(addr)
        s = server.settings
        self.session = ServerSession(quic, udp_enabled=not s.disable_udp,
                                     udp_idle_timeout=s.udp_idle_timeout)
        self.pumps: dict[int, RelayPump] = {}
        self.attach_pumps()
        self.unflushed: list[RelayPump] = []       # see QuicGlue.flush_pumps
        self.paused: set = set()
        self.closed = False
        self.conn_slot = -1
        self.user_slot = -1
        self.conn_id = random.getrandbits(32)
        self.cids: set[bytes] = set()
        self.tasks: set = set()
        self.brutal = None

    @property
    def auth_id(self):
        return self.session.auth_id

    # -- input ------------------------------------------------------------------------------
    def process_events(self, now: float) -> None:
        quic = self.quic
        session = self.session
        event = quic.next_event()
        while event is not None:
            t = type(event)
            if t is qe.StreamDataReceived:
                pump = self.pumps.get(event.stream_id)
                if pump is not None:
                    pump.from_quic(event.data, event.end_stream)
                else:
                    self._dispatch(session.handle(event, now))
            elif t is qe.DatagramFrameReceived:
                if not (session.authenticated and session.udp_enabled
                        and datagram_from_client(session.udp.sessions, event.data, now)):
                    self._dispatch(session.handle(event, now))
            elif t is qe.ConnectionIdIssued:
                self.server.add_cid(event.connection_id, self)
            elif t is qe.ConnectionIdRetired:
                self.server.remove_cid(event.connection_id)
            else:
                self._dispatch(session.handle(event, now))
            event = quic.next_event()
        self.flush_pumps()
        if self.paused:
            self.paused = {p for p in self.paused if not p.check_resume()}
        self.server.mark_dirty(self)

    def _dispatch(self, app_events: list) -> None:
        for e in app_events:
            t = type(e)
            if t is TcpData:
                pump = self.pumps.get(e.stream_id)
                if pump is not None:
                    pump.from_quic(e.data, e.end)
            elif t is TcpRequested:
                self._open_tcp(e)
            elif t is UdpReceived:
                self._udp_out(e)
            elif t is SendStopped:
                pump = self.pumps.get(e.stream_id)
                if pump is not None:
                    pump.stop_sending()
            elif t is StreamClosed:
                pump = self.pumps.get(e.stream_id)
                if pump is not None:
                    pump.abort()
                log.debug("%s stream %d closed: %s", self.peer, e.stream_id, e.reason)
            elif t is AuthRequested:
                self._spawn(self._authenticate(e))
            elif t is HttpRequest:
                self._spawn(self._masquerade(e.stream_id, e.headers, e.body))
            elif t is Terminated:
                self._terminated(e)

    def _spawn(self, coro) -> None:
        task = self.server.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- auth and masquerade ----------------------------------------------------------------
    async def _authenticate(self, e: AuthRequested) -> None:
        server = self.server
        reason = "credentials not accepted"
        try:
            user_id = await server.authenticator.authenticate(self.peer, e.auth, e.client_rx)
        except Exception:
            log.exception("authenticator failed")
            user_id, reason = None, "authenticator error"
        if self.closed:
            return
        if user_id is None:
            # One line per refusal, remote address first after the fixed text, so a fail2ban
            # filter can match ``authentication failed from <HOST>:\d+``.
            log.info("authentication failed from %s: %s", self.peer, reason)
            for req in self.session.reject_auth(e.stream_id):
                await self._masquerade(req.stream_id, req.headers, req.body)
            return
        s = server.settings
        answer_rx = None if s.ignore_client_bandwidth else s.bandwidth_down
        self.session.accept_auth(e.stream_id, user_id, answer_rx)
        if self.session.udp_enabled:
            self.quic.datagram_sink = ClientDatagrams(self.session.udp.sessions)
        self._count_connection(user_id)
        if not s.ignore_client_bandwidth and e.client_rx > 0:
            rate = e.client_rx if not s.bandwidth_up else min(e.client_rx, s.bandwidth_up)
            self.brutal = install_brutal(self.quic, rate, server.loop.time())
        server.register_user(self)
        log.debug("%s authenticated as %s (%s)", self.peer, user_id,
                  f"Brutal at {rate} B/s" if self.brutal is not None else "congestion control")
        self.want_transmit()

    async def _masquerade(self, stream_id: int, raw_headers, body: bytes) -> None:
        try:
            status, headers, content = await self.server.masquerade.respond(
                decode_headers(raw_headers), body)
        except Exception:
            log.exception("masquerade failed")
            status, headers, content = go_writer(not_found())
        if not self.closed:
            self.session.send_http_response(stream_id, status, headers, content)
            self.want_transmit()

    # -- counting ---------------------------------------------------------------------------
    def _count_connection(self, user_id: str) -> None:
        w = self.server.counters
        if w is None:
            return
        try:
            self.user_slot = w.user_slot(user_id)
            self.conn_slot = w.open(KIND_CONNECTION, user_id, user_slot=self.user_slot,
                                    conn_id=self.conn_id, text_a=self.peer, state=STATE_ESTAB)
        except Exception:
            log.warning("counter shard full: connection of %s not counted", user_id)
            self.conn_slot = -1

    def _open_slot(self, kind: int, stream_id: int, address: str, state: int) -> int:
        w = self.server.counters
        if w is None or self.conn_slot < 0:
            return -1
        try:
            return w.open(kind, self.session.auth_id, user_slot=self.user_slot,
                          conn_slot=self.conn_slot, conn_id=self.conn_id, stream_id=stream_id,
                          text_a=self.peer, text_b=address, state=state)
        except Exception:
            return -1

    def _close_slot(self, slot: int) -> None:
        if slot >= 0 and self.server.counters is not None:
            try:
                self.server.counters.close(slot)
            except Exception:
                pass

    # -- TCP proxy streams ------------------------------------------------------------------
    def _open_tcp(self, e: TcpRequested) -> None:
        # Opened as connecting: the dial starts with the next turn of the loop.
        # Mesh control requests (probes, peer lists) are node-to-node talk: not counted.
        slot = -1 if is_control(e.address) else self._open_slot(KIND_TCP_STREAM, e.stream_id,
                                                                e.address, STATE_CONNECT)
        pump = RelayPump(self, self.quic, e.stream_id, self.server.counters, slot, True)
        self.pumps[e.stream_id] = pump
        if e.early or e.end:
            pump.from_quic(e.early, e.end)
        self._spawn(self._dial(pump, e.address, slot))

    async def _dial(self, pump: RelayPump, address: str, slot: int) -> None:
        server = self.server
        w = server.counters
        # The response goes out from the pump's connection_made, before the first byte the
        # target (or the exit peer) sends: a banner, or the echo of the client's early data,
        # may be read before this coroutine resumes, and must not overtake the response.
        pump.head = encode_tcp_response(True, "Connected")
        loop = server.loop
        # The dial's deadline is one timer that cancels this task: asyncio.timeout's context
        # manager costs several Python calls per dial, and there is one dial per stream.
        expired = []
        timer = loop.call_later(DIAL_TIMEOUT, _expire, asyncio.current_task(), expired)
        try:
            visited = ()
            if address.startswith(RELAY_PREFIX):
                # A relay request of the mesh (fastpath.mesh.relay): served here, or
                # the target it asks this node to open (with the nodes it went through).
                opened = await server.egress.serve_relay(pump, address, loop, self)
                address, visited = opened if opened is not None else (None, ())
            if address is not None:
                await self._dial_target(pump, address, visited)
        except (OSError, ValueError, asyncio.CancelledError) as exc:
            if type(exc) is asyncio.CancelledError and (self.closed or not expired):
                raise                   # cancelled by the connection's end, not the deadline
            if self.closed or pump.finished and pump.stream_id not in self.pumps:
                return
            message = str(exc) or type(exc).__name__
            if type(exc) is asyncio.CancelledError:
                message = f"dial {address}: timeout"
            log.debug("%s stream %d: dial %s failed: %s", self.peer, pump.stream_id, address,
                      message)
            self._dial_failed(pump, message)
            return
        finally:
            timer.cancel()
        if self.closed or pump.finished:
            return
        if slot >= 0:
            w.set_state(slot, STATE_ESTAB)
        self.want_transmit()

    async def _dial_target(self, pump: RelayPump, address: str, visited=()) -> None:
        server = self.server
        host, port = split_address(address)
        route = server.egress.exit_of(self.session.auth_id, host)
        if route is not None:
            # The traffic leaves through other nodes (a user's exit or a rule): opened there
            # or failed, never dialed from here.
            await server.egress.open_stream(route, pump, address, server.loop, visited)
            return
        if host == SPEEDTEST_HOST and server.speedtest is not None:
            host, port = server.speedtest.address
        elif host == SPEEDTEST_HOST:
            raise OSError("speed test is not enabled")
        await server.egress.direct(server.loop, lambda: pump, host, port)

    def _dial_failed(self, pump: RelayPump, message: str) -> None:
        """Answer a failed dial and end the stream with our FIN only: a STOP_SENDING in the
        same packet may reach the client before the answer and hide its message."""
        sid = pump.stream_id
        if self.pumps.pop(sid, None) is not None:
            self.paused.discard(pump)
            self._close_slot(pump.slot)
        pump.abort()                        # finished; the owner no longer knows it
        self.session.tcp_response(sid, False, message)
        self.session.router.drop(sid)
        try:
            self.quic.send_stream_data(sid, b"", end_stream=True)
        except Exception:                   # the stream is already gone
            pass
        self.want_transmit()

    # RelayPump owner interface
    def want_transmit(self) -> None:
        self.server.mark_dirty(self)

    budget_cut = False          # set once budget_spent closed this user's connections

    def budget_spent(self, pump) -> None:
        """A pump found the user's traffic cap reached (``ShardWriter.budget_left``): every
        connection of the user on this worker closes now, as the supervisor's cut-off would
        one tick later."""
        if not self.closed and not self.budget_cut and self.session.auth_id is not None:
            self.budget_cut = True
            user_id = self.session.auth_id
            # Refused at auth from now on, before the supervisor's next scan says so too (it
            # will: the user's count has reached the limit); its next over_limit list
            # replaces this set, so a reset lets the user back in.
            self.server.authenticator.refuse_over_limit(user_id)
            self.server.kick([user_id])

    def pump_paused(self, pump) -> None:
        self.paused.add(pump)

    def pump_finished(self, pump, reason: str) -> None:
        sid = pump.stream_id
        if self.pumps.pop(sid, None) is None:
            return
        self.paused.discard(pump)
        self._close_slot(pump.slot)
        if not self.closed:
            self.session.end_proxy_stream(sid)
            self.want_transmit()

    # -- UDP --------------------------------------------------------------------------------
    def _udp_out(self, e: UdpReceived) -> None:
        session = e.session
        pump = session.handle
        if pump is None:
            if e.created:
                for victim in self.session.udp.over_capacity():
                    self._close_udp(victim)
            slot = self._open_slot(KIND_UDP_SESSION, session.session_id, e.address, STATE_ESTAB)
            server = self.server
            # A session's route is decided by its first datagram's destination.
            route = server.egress.exit_of(self.session.auth_id, target_host(e.address))
            if route is not None:       # relayed along the route, or dropped: never sent from here
                pump = server.egress.udp(server.loop, self, session.session_id, route,
                                         server.counters, slot)
            else:
                pump = UdpPump(server.loop, self, self.quic, session, server.counters, slot)
            session.handle = pump
        pump.send(e.address, e.payload)

    # UdpPump owner interface (with want_transmit)
    def send_fragmented(self, session_id: int, address: str, payload: bytes) -> int:
        """A reply too large for one datagram, as fragments; how many were queued."""
        return 0 if self.closed else self.session.send_udp(session_id, address, payload)

    def _close_udp(self, session) -> None:
        relay = session.handle
        session.handle = None
        if relay is not None:
            relay.close()
            self._close_slot(relay.slot)

    # -- timers, transmit, end --------------------------------------------------------------
    def transmit(self) -> None:
        if not self.closed:
            self.send_datagrams(self.server.endpoint)

    def housekeeping(self, now: float) -> None:
        for session in self.session.housekeeping(now):
            self._close_udp(session)

    def close(self, error_code: int, reason: str = "") -> None:
        if not self.closed:
            self.quic.close(error_code=error_code, reason_phrase=reason)
            self.server.mark_dirty(self)

    def _terminated(self, e: Terminated) -> None:
        if self.closed:
            return
        self.closed = True
        for pump in list(self.pumps.values()):
            pump.abort()
        self.pumps.clear()
        for session in self.session.udp.clear():
            self._close_udp(session)
        for task in self.tasks:
            task.cancel()
        self.cancel_timer()
        self._close_slot(self.conn_slot)
        self.conn_slot = -1
        self.server.forget(self)


class Hy2Server:
    def __init__(self, settings: ServerSettings, *, cert: str, key: str, authenticator,
                 masquerade, counters=None, egress: Egress = DIRECT, obfs=None, speedtest=None,
                 reset_key: bytes | None = None) -> None:
        """``authenticator``: who may connect (``auth_backends.NodeAuthenticator``);
        ``counters``: the counter sink (the worker's ``ShardWriter``, None: not counted);
        ``egress``: where users' traffic leaves (``fastpath.worker.egress``)."""
        self.settings = settings
        # reset_key: the node-wide key stateless-reset tokens derive from (None: this process's
        # own, which is enough when no other process will take over its socket).
        self.resetter = StatelessResetter(reset_key)
        # Connections whose handshake is not complete; beyond the budget, Retry
        # (fastpath.hy2.quic.address_validation).
        self.half_open: set[ServerConnection] = set()
        self.half_open_budget = settings.quic.max_half_open
        self.retry_tokens = RetryTokens()
        self.retries_sent = 0
        self.cert, self.key = cert, key
        self.authenticator = authenticator
        self.masquerade = masquerade
        self.counters = counters
        self.egress = egress
        self.obfs = obfs
        self.speedtest = speedtest
        self.loop = None
        self.endpoint: UdpEndpoint | None = None
        self.by_cid: dict[bytes, ServerConnection] = {}
        self.connections: set[ServerConnection] = set()
        self.by_user: dict[str, set[ServerConnection]] = {}
        self._dirty: set[ServerConnection] = set()
        self._flush_handle = None
        self._housekeeping = None
        self.configuration = quic_configuration(
            is_client=False, quic_settings=settings.quic, connection_id_length=HOST_CID_LENGTH)
        self.configuration.load_cert_chain(cert, key)

    async def start(self, sock=None) -> "Hy2Server":
        self.loop = asyncio.get_running_loop()
        if sock is None:
            host, port = self.settings.listen
            sock = make_udp_socket(host, port, reuse_port=True)
        self.endpoint = make_endpoint(sock, self._on_batch, obfs=self.obfs)
        self.endpoint.start(self.loop)
        self._housekeeping = asyncio.ensure_future(self._housekeeping_loop())
        self.authenticator.on_device_cutoff(self.kick_device)
        return self

    @property
    def address(self):
        return self.endpoint.local_address

    # -- packets in -------------------------------------------------------------------------
    def _on_batch(self, batch: list) -> None:
        # The clients' UDP messages to targets are gathered into runs while the batch is read
        # and sent when it is done (``udp_pump.begin_batch``).
        begin_batch()
        try:
            self._receive_batch(batch)
        finally:
            end_batch()
        self._flush()

    def _receive_batch(self, batch: list) -> None:
        now = self.loop.time()
        by_cid = self.by_cid
        touched: dict[ServerConnection, None] = {}      # in order of first packet
        for data, addr in batch:
            first = data[0] if data else 0
            if first & 0x80:
                if len(data) < 7:
                    continue
                dcid = data[6:6 + data[5]]
            else:
                dcid = data[1:1 + HOST_CID_LENGTH]
            conn = by_cid.get(dcid)
            if conn is None:
                conn = self._new_connection(data, addr, now)
                if conn is None:
                    if not first & 0x80:
                        self._reset_unknown(data, dcid, addr)
                    continue
            try:
                conn.quic.receive_datagram(data, addr, now)
            except Exception:
                log.exception("error handling a packet from %s", addr)
            touched[conn] = None
        # Events once per connection and batch: their dispatch, the resume checks and the
        # transmit that follows are not repeated for every packet.
        half_open = self.half_open
        for conn in touched:
            try:
                conn.process_events(now)
            except Exception:
                log.exception("error handling packets from %s", conn.addr)
            if half_open and conn in half_open and aioquic_seam.handshake_complete(conn.quic):
                half_open.discard(conn)

    def _reset_unknown(self, data: bytes, dcid: bytes, addr) -> None:
        """A 1-RTT packet for a connection this process does not hold (its previous process
        died, or it ended): answer with a stateless reset so the client reconnects now."""
        reset = self.resetter.reset_for(data, dcid)
        if reset is not None:
            log.debug("stateless reset to %s for an unknown connection ID", addr[0])
            self.endpoint.send([(reset, addr)])

    def _send_retry(self, header, addr) -> None:
        """Over the half-open budget: ask the client to prove its address first."""
        retry_scid = os.urandom(HOST_CID_LENGTH)
        token = self.retry_tokens.issue(addr, header.destination_cid, retry_scid)
        self.retries_sent += 1
        self.endpoint.send([(encode_quic_retry(
            version=header.version, source_cid=retry_scid, destination_cid=header.source_cid,
            original_destination_cid=header.destination_cid, retry_token=token), addr)])

    def _new_connection(self, data: bytes, addr, now: float):
        buf = Buffer(data=data)
        try:
            header = pull_quic_header(buf, host_cid_length=HOST_CID_LENGTH)
        except ValueError:
            return None
        cfg = self.configuration
        if (header.packet_type != QuicPacketType.VERSION_NEGOTIATION and header.version is not None
                and header.version not in cfg.supported_versions and len(data) >= 1200):
            # Only to a datagram that could open a connection (RFC 9000 §5.2.2, §6.1).
            self.endpoint.send([(encode_quic_version_negotiation(
                source_cid=header.destination_cid, destination_cid=header.source_cid,
                supported_versions=cfg.supported_versions), addr)])
            return None
        if (header.packet_type != QuicPacketType.INITIAL or len(data) < 1200
                or len(header.destination_cid) < 8):
            return None
        original_dcid, retry_scid = header.destination_cid, None
        if header.token:
            checked = self.retry_tokens.check(addr, header.token)
            if checked is None or checked[1] != header.destination_cid:
                return None              # forged, expired or from another address
            original_dcid, retry_scid = checked
        elif len(self.half_open) >= self.half_open_budget:
            self._send_retry(header, addr)
            return None
        quic = Hy2QuicConnection(configuration=cfg,
                                 original_destination_connection_id=original_dcid,
                                 retry_source_connection_id=retry_scid,
                                 stream_window=self.settings.quic.max_stream_window,
                                 max_incoming_streams=self.settings.quic.max_incoming_streams,
                                 reset_key=self.resetter.key)
        conn = ServerConnection(self, quic, addr)
        self.connections.add(conn)
        self.half_open.add(conn)
        self.add_cid(header.destination_cid, conn)
        self.add_cid(quic.host_cid, conn)
        quic.on_host_cids = lambda cids, conn=conn: self._route_cids(cids, conn)
        return conn

    def _route_cids(self, cids, conn: ServerConnection) -> None:
        if not conn.closed:
            for cid in cids:
                self.add_cid(cid, conn)

    def add_cid(self, cid: bytes, conn: ServerConnection) -> None:
        self.by_cid[cid] = conn
        conn.cids.add(cid)

    def remove_cid(self, cid: bytes) -> None:
        conn = self.by_cid.pop(cid, None)
        if conn is not None:
            conn.cids.discard(cid)

    def forget(self, conn: ServerConnection) -> None:
        """A connection terminated: drop its routes (late packets will be ignored)."""
        for cid in conn.cids:
            if self.by_cid.get(cid) is conn:
                del self.by_cid[cid]
        conn.cids.clear()
        self.connections.discard(conn)
        self.half_open.discard(conn)
        self._dirty.discard(conn)
        if conn.auth_id is not None:
            peers = self.by_user.get(conn.auth_id)
            if peers is not None:
                peers.discard(conn)
                if not peers:
                    del self.by_user[conn.auth_id]

    def register_user(self, conn: ServerConnection) -> None:
        self.by_user.setdefault(conn.auth_id, set()).add(conn)

    # -- packets out ------------------------------------------------------------------------
    def mark_dirty(self, conn: ServerConnection) -> None:
        self._dirty.add(conn)
        if self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        dirty, self._dirty = self._dirty, set()
        for conn in dirty:
            try:
                conn.transmit()
            except Exception:
                log.exception("transmit failed")

    # -- management -------------------------------------------------------------------------
    def kick(self, ids) -> int:
        """Close every connection of these auth ids at once (close code 0x107)."""
        closed = 0
        for user_id in set(ids):
            for conn in list(self.by_user.get(user_id, ())):
                conn.close(CLOSE_KICKED, "kicked")
                closed += 1
        if closed:
            self._flush()
        return closed

    def kick_device(self, user_id: str, ip: str) -> int:
        """Close every connection of ``user_id`` from remote address ``ip`` (close code 0x107)."""
        closed = 0
        for conn in list(self.by_user.get(user_id, ())):
            if conn.peer.rpartition(":")[0].strip("[]") == ip:
                conn.close(CLOSE_KICKED, "kicked")
                closed += 1
        if closed:
            self._flush()
        return closed

    def online(self) -> dict[str, int]:
        return {uid: len(conns) for uid, conns in self.by_user.items()}

    async def _housekeeping_loop(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            now = self.loop.time()
            for conn in list(self.connections):
                try:
                    conn.housekeeping(now)
                except Exception:
                    log.exception("housekeeping failed")
            # Connections that ended without a ConnectionTerminated event reaching us.
            for conn in list(self.connections):
                if aioquic_seam.is_terminated(conn.quic) and not conn.closed:
                    conn._terminated(Terminated(0, "terminated"))

    async def close(self) -> None:
        for conn in list(self.connections):
            conn.close(0x100, "server shutting down")
        self._flush()
        await asyncio.sleep(0.05)
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        for conn in list(self.connections):
            conn._terminated(Terminated(0x100, "server shutting down"))
        if self.endpoint is not None:
            self.endpoint.close()
