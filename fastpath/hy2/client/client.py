"""The Hysteria 2 client's I/O, and its Python API.

``Hy2Client`` connects and authenticates (``AuthError`` with the server's status when refused,
closing with 0x101), then offers::

    reader, writer = await client.open_tcp("example.com:80")   # asyncio streams over QUIC
    udp = await client.udp_session(); udp.send("1.2.3.4:53", b"..."); addr, data = await udp.recv()
    await client.relay_tcp("host:port", transport)              # splice a local TCP socket

A lost connection is re-established on the next use, with backoff.  The local listeners of
``fastpath client`` (SOCKS5, HTTP, forwards) are built on this API.
"""
from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import random
import socket
import ssl

from aioquic.quic import events as qe

from fastpath.hy2.quic import aioquic_seam, quic_receive
from fastpath.hy2.quic.brutal import install_brutal
from fastpath.hy2.client.client_udp_pump import deliver_datagram
from fastpath.hy2.client.client_session import CLOSE_AUTH_FAILED, ClientSession
from fastpath.hy2.config import (CHROME_MAX_STREAMS_BIDI, CHROME_MAX_STREAMS_UNI, ClientSettings,
                                 QuicSettings)
from fastpath.hy2.wire.events import (AuthResult, SendStopped, StreamClosed, TcpData, TcpResponse, Terminated,
                                 UdpReceived)
from fastpath.hy2.quic.quic_connection import (ACK_SPLIT, Hy2QuicConnection, QuicGlue,
                                               quic_configuration)
from fastpath.hy2.quic.relay_pump import RelayPump
from fastpath.hy2.quic.udp_endpoint import UdpEndpoint, make_endpoint, make_udp_socket

log = logging.getLogger("fastpath.hy2.client")

CONNECT_TIMEOUT = 10.0
READ_LIMIT = 1024 * 1024
WRITE_HIGH_WATER = 4 * 1024 * 1024
WRITE_LOW_WATER = 1024 * 1024
BACKOFF_MAX = 30.0


class Hy2Error(Exception):
    """The client could not do what was asked; the message says why."""


class AuthError(Hy2Error):
    def __init__(self, status: int):
        self.status = status
        super().__init__(f"authentication failed (server answered HTTP {status})")


class ConnectError(Hy2Error):
    """The server could not reach the requested address (its message is kept)."""


class CertificateError(Hy2Error):
    """The server's certificate did not verify (our TLS stack refused it during the handshake).
    Retrying cannot help until the config or the server's certificate changes."""

    def __init__(self, detail: str):
        self.detail = detail
        super().__init__(f"the server's certificate does not verify ({detail})")


# TLS alerts (RFC 8446 6.2) that mean "this certificate is not trusted", carried in QUIC's
# CRYPTO_ERROR range (0x100 + alert) when our side aborts the handshake.
_CERTIFICATE_ALERTS = {42, 43, 44, 45, 46, 48, 49}


class _CreditValve:
    """A StreamReader's "transport": pausing it holds the QUIC stream's credit."""

    def __init__(self, conn: "ClientConnection", stream_id: int):
        self.conn, self.stream_id = conn, stream_id

    def pause_reading(self):
        self.conn.quic.hold_credit(self.stream_id, True)

    def resume_reading(self):
        self.conn.quic.hold_credit(self.stream_id, False)
        self.conn.want_transmit()


class QuicStreamWriter:
    """The writing half of ``open_tcp``, shaped like asyncio.StreamWriter."""

    def __init__(self, conn: "ClientConnection", stream_id: int):
        self.conn = conn
        self.stream_id = stream_id
        self._closed = False
        self._drained: asyncio.Future | None = None

    def write(self, data: bytes) -> None:
        if self._closed:
            raise ConnectionResetError("stream closed")
        if self.conn.closed:
            raise ConnectionResetError("connection to the server is gone")
        if data:
            try:
                self.conn.quic.send_stream_data(self.stream_id, bytes(data))
            except RuntimeError:
                raise ConnectionResetError("the server stopped reading this stream") from None
            self.conn.want_transmit()

    def writelines(self, chunks) -> None:
        for chunk in chunks:
            self.write(chunk)

    async def drain(self) -> None:
        conn = self.conn
        while not conn.closed and conn.quic.unsent_bytes(self.stream_id) > WRITE_HIGH_WATER:
            if self._drained is None or self._drained.done():
                self._drained = asyncio.get_running_loop().create_future()
                conn.waiting_writers.add(self)
            await self._drained
        if conn.closed:
            raise ConnectionResetError("connection to the server is gone")

    def check_drained(self) -> bool:
        if self.conn.quic.unsent_bytes(self.stream_id) <= WRITE_LOW_WATER or self.conn.closed:
            if self._drained is not None and not self._drained.done():
                self._drained.set_result(None)
            return True
        return False

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        """Finish our direction.  The server closes both directions when one ends (as the
        reference does), so read what you need before calling this."""
        if not self._closed:
            self._closed = True
            self.conn.session.end_stream(self.stream_id)
            self.conn.want_transmit()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.conn.session.end_stream(self.stream_id)
            self.conn.readers.pop(self.stream_id, None)
            self.conn.want_transmit()

    def is_closing(self) -> bool:
        return self._closed

    async def wait_closed(self) -> None:
        await asyncio.sleep(0)

    def get_extra_info(self, name, default=None):
        return {"stream_id": self.stream_id}.get(name, default)


class UdpSession:
    """One UDP session through the server: ``send(address, payload)``, ``await recv()``."""

    def __init__(self, client: "Hy2Client", conn: "ClientConnection", session_id: int,
                 queue_size: int = 1024):
        self.client = client
        self.conn = conn
        self.session_id = session_id
        self.queue: asyncio.Queue = asyncio.Queue(queue_size)
        self.closed = False

    def send(self, address: str, payload: bytes) -> bool:
        if self.closed or self.conn.closed:
            return False
        sent = self.conn.session.send_udp(self.session_id, address, payload)
        self.conn.want_transmit()
        return bool(sent)

    def _deliver(self, address: str, payload: bytes) -> None:
        try:
            self.queue.put_nowait((address, payload))
        except asyncio.QueueFull:
            pass

    async def recv(self) -> tuple[str, bytes]:
        item = await self.queue.get()
        if item is None:
            raise ConnectionResetError("UDP session closed")
        return item

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.conn.udp_sessions.pop(self.session_id, None)
            try:
                self.queue.put_nowait(None)
            except asyncio.QueueFull:
                pass


class ClientConnection(QuicGlue):
    """Glue for one QUIC connection to the server."""

    def __init__(self, client: "Hy2Client", quic: Hy2QuicConnection, endpoint: UdpEndpoint,
                 server_addr) -> None:
        self.client = client
        self.quic = quic
        self.endpoint = endpoint
        self.server_addr = server_addr
        self.loop = asyncio.get_running_loop()
        s = client.settings
        self.session = ClientSession(quic, s.auth, s.bandwidth_down)
        self.closed = False
        self.close_reason: Terminated | None = None
        # Pings the server between idle periods (Hy2Client.connect starts it when configured).
        self.keep_alive_task: asyncio.Task | None = None
        self.auth_result: asyncio.Future = self.loop.create_future()
        self._flush_handle = None
        self.pending_opens: dict[int, asyncio.Future] = {}
        # Payload that followed a stream's response before its opener took it over (a
        # banner, or the server sent the response and the target's first bytes in separate
        # frames): kept, not dropped, and handed to the reader or pump with the response.
        self.unclaimed: dict[int, TcpResponse] = {}
        self.readers: dict[int, asyncio.StreamReader] = {}
        self.pumps: dict[int, RelayPump] = {}
        self.attach_pumps()
        self.unflushed: list[RelayPump] = []       # see QuicGlue.flush_pumps
        self.socket_owners: dict[int, object] = {}      # see Hy2Client.splice_streams
        self.paused: set = set()
        self.waiting_writers: set = set()
        self.udp_sessions: dict = {}           # session id -> UdpSession or UdpPeer
        self.terminated = asyncio.Event()
        # An eager connection's ACKs also go out within a large receive batch (on_batch)
        self.ack_split = ACK_SPLIT if quic.eager_ack else 0

    # -- I/O --------------------------------------------------------------------------------
    def on_batch(self, batch: list) -> None:
        now = self.loop.time()
        # A stateless reset carries the token the server gave for the connection ID we send
        # to; aioquic does not look for one, so a dead server-side connection would otherwise
        # hang until the idle timeout.
        # (the loop is quic_receive.receive_batch, in C)
        if quic_receive.receive_batch(self.quic, batch, now,
                                      aioquic_seam.peer_reset_token(self.quic),
                                      self.transmit, self.ack_split):
            log.info("stateless reset from %s: the server no longer knows this connection",
                     self.server_addr[0])
            self._terminated(Terminated(0, "stateless reset"))
            return
        self.process_events(now)
        self.transmit()

    def process_events(self, now: float) -> None:
        quic = self.quic
        event = quic.next_event()
        while event is not None:
            t = type(event)
            if t is qe.StreamDataReceived:
                pump = self.pumps.get(event.stream_id)
                if pump is not None:
                    pump.from_quic(event.data, event.end_stream)
                    event = quic.next_event()
                    continue
            elif t is qe.DatagramFrameReceived and self.session.authenticated \
                    and deliver_datagram(self.udp_sessions, event.data):
                event = quic.next_event()
                continue
            for e in self.session.handle(event, now):
                self._dispatch(e)
            event = quic.next_event()
        self.flush_pumps()
        if self.paused:
            self.paused = {p for p in self.paused if not p.check_resume()}
        if self.waiting_writers:
            self.waiting_writers = {w for w in self.waiting_writers if not w.check_drained()}
        self.want_transmit()

    def _dispatch(self, e) -> None:
        t = type(e)
        if t is TcpData:
            pump = self.pumps.get(e.stream_id)
            if pump is not None:
                pump.from_quic(e.data, e.end)
                return
            reader = self.readers.get(e.stream_id)
            if reader is not None:
                if e.data:
                    reader.feed_data(e.data)
                if e.end:
                    reader.feed_eof()
                    self.readers.pop(e.stream_id, None)
                return
            resp = self.unclaimed.get(e.stream_id)
            if resp is not None:
                resp.early += e.data
                resp.end = resp.end or e.end
        elif t is TcpResponse:
            fut = self.pending_opens.pop(e.stream_id, None)
            if fut is not None and not fut.done():
                if e.ok:
                    self.unclaimed[e.stream_id] = e
                fut.set_result(e)
            elif e.ok is False:
                self.session.end_stream(e.stream_id)
        elif t is UdpReceived:
            udp = self.udp_sessions.get(e.session.session_id)
            if udp is not None:
                udp._deliver(e.address, e.payload)
        elif t is SendStopped:
            pump = self.pumps.get(e.stream_id)
            if pump is not None:
                pump.stop_sending()
        elif t is StreamClosed:
            self.unclaimed.pop(e.stream_id, None)
            fut = self.pending_opens.pop(e.stream_id, None)
            if fut is not None and not fut.done():
                fut.set_exception(ConnectError(e.reason))
            pump = self.pumps.get(e.stream_id)
            if pump is not None:
                pump.abort()
            reader = self.readers.pop(e.stream_id, None)
            if reader is not None:
                reader.set_exception(ConnectionResetError(e.reason))
        elif t is AuthResult:
            if not self.auth_result.done():
                self.auth_result.set_result(e)
        elif t is Terminated:
            self._terminated(e)

    def want_transmit(self) -> None:
        if self._flush_handle is None and not self.closed:
            self._flush_handle = self.loop.call_soon(self.transmit)

    def pump_paused(self, pump) -> None:
        self.paused.add(pump)

    def pump_finished(self, pump, reason: str) -> None:
        if self.pumps.pop(pump.stream_id, None) is None:
            return
        self.socket_owners.pop(pump.stream_id, None)
        self.paused.discard(pump)
        if not self.closed:
            self.session.end_stream(pump.stream_id)
            self.want_transmit()

    def transmit(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self.closed:
            self.send_datagrams(self.endpoint)

    def _on_timer(self) -> None:
        super()._on_timer()
        self.transmit()

    def close(self, error_code: int = 0x100, reason: str = "") -> None:
        if not self.closed:
            self.quic.close(error_code=error_code, reason_phrase=reason)
            self.transmit()

    def _terminated(self, e: Terminated) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = e
        self.cancel_timer()
        keep_alive = self.keep_alive_task
        if keep_alive is not None:
            keep_alive.cancel()      # it would sleep out its period, and be pending at exit
        if not self.auth_result.done():
            handshaking = not aioquic_seam.handshake_complete(self.quic)
            if handshaking and e.error_code - 0x100 in _CERTIFICATE_ALERTS:
                self.auth_result.set_exception(CertificateError(e.reason or "refused"))
            else:
                self.auth_result.set_exception(Hy2Error(
                    f"connection closed during auth (code 0x{e.error_code:x} {e.reason})"))
        for fut in self.pending_opens.values():
            if not fut.done():
                fut.set_exception(ConnectionResetError("connection to the server closed"))
        self.pending_opens.clear()
        self.unclaimed.clear()
        for pump in list(self.pumps.values()):
            pump.abort()
        for reader in self.readers.values():
            reader.set_exception(ConnectionResetError("connection to the server closed"))
        self.readers.clear()
        for w in self.waiting_writers:
            w.check_drained()
        for udp in list(self.udp_sessions.values()):
            udp.close()
        self.endpoint.close()
        self.terminated.set()


def client_quic_configuration(settings: ClientSettings):
    cfg = quic_configuration(is_client=True, quic_settings=settings.quic,
                             server_name=settings.server_name, connection_id_length=0)
    if settings.insecure or settings.pin_sha256:
        cfg.verify_mode = ssl.CERT_NONE
    elif settings.ca:
        # PEM text (an HY2 SCALE client's ``ca``) or a file (the client config's ``tls.ca``).
        if settings.ca.lstrip().startswith("-----BEGIN"):
            cfg.load_verify_locations(cadata=settings.ca.encode())
        else:
            cfg.load_verify_locations(cafile=settings.ca)
    return cfg


class Hy2Client:
    def __init__(self, settings: ClientSettings | None = None, **kwargs) -> None:
        if settings is None:
            settings = ClientSettings(**kwargs)
        self.settings = settings
        self.conn: ClientConnection | None = None
        self._connecting: asyncio.Future | None = None
        self._session_ids = itertools.count(random.randrange(1, 1 << 20))
        self._failures = 0
        self._refused: tuple[Hy2Error, float] | None = None
        self._refused_hold = 1.0
        self.obfs = None
        if settings.obfs_password:
            from fastpath.hy2.wire.salamander import Salamander
            self.obfs = Salamander(settings.obfs_password.encode())

    # -- connection -------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.conn is not None and not self.conn.closed

    async def connect(self, timeout: float = CONNECT_TIMEOUT) -> ClientConnection:
        """Connect and authenticate (once; concurrent callers share the attempt)."""
        if self.connected:
            return self.conn
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._connect_once(timeout))
        return await asyncio.shield(self._connecting)

    async def ensure_connected(self) -> ClientConnection:
        """Connect, retrying with exponential backoff.  A refused auth or certificate is not
        retried here: the caller decides (``fastpath client`` stays up and tries again later,
        see ``client_main``).  After one, callers get the same error without a new handshake
        for a while (2 s, doubling to 30 s), so a burst of requests is not a burst of
        handshakes the server will refuse anyway."""
        refused = self._refused
        if refused is not None and asyncio.get_running_loop().time() < refused[1]:
            raise refused[0]
        delay = 0.5
        while True:
            try:
                conn = await self.connect()
                self._refused, self._refused_hold = None, 1.0
                return conn
            except (AuthError, CertificateError) as exc:
                self._refused_hold = min(self._refused_hold * 2, BACKOFF_MAX)
                self._refused = (exc, asyncio.get_running_loop().time() + self._refused_hold)
                raise
            except (Hy2Error, OSError, asyncio.TimeoutError) as exc:
                log.warning("connecting to %s:%d failed: %s; retrying in %.1fs",
                            self.settings.server_host, self.settings.server_port, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)

    async def _connect_once(self, timeout: float = CONNECT_TIMEOUT) -> ClientConnection:
        s = self.settings
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(s.server_host, s.server_port, type=socket.SOCK_DGRAM)
        if not infos:
            raise Hy2Error(f"cannot resolve {s.server_host}")
        family, _, _, _, server_addr = infos[0]
        sock = make_udp_socket("::" if family == socket.AF_INET6 else "0.0.0.0", 0)
        quic = Hy2QuicConnection(configuration=client_quic_configuration(s),
                                 stream_window=s.quic.max_stream_window,
                                 initial_streams=(CHROME_MAX_STREAMS_BIDI, CHROME_MAX_STREAMS_UNI)
                                 if s.quic.chrome_parrot else None)
        conn = None
        endpoint = make_endpoint(sock, lambda batch: conn.on_batch(batch), obfs=self.obfs)
        conn = ClientConnection(self, quic, endpoint, server_addr[:2])
        endpoint.start(loop)
        quic.connect(server_addr[:2], now=loop.time())
        conn.session.start_auth()
        conn.transmit()
        try:
            result: AuthResult = await asyncio.wait_for(conn.auth_result, timeout)
        except asyncio.TimeoutError:
            conn.close(0x100, "timeout")
            conn._terminated(Terminated(0, "timeout"))
            raise Hy2Error(f"no answer from {s.server_host}:{s.server_port} within "
                           f"{timeout:g}s") from None
        except Exception:
            conn._terminated(Terminated(0, "failed"))
            raise
        if s.pin_sha256 and not self._pin_ok(quic):
            conn.close(CLOSE_AUTH_FAILED, "certificate pin mismatch")
            raise Hy2Error("server certificate does not match tls.pinSHA256")
        if not result.ok:
            conn.close(CLOSE_AUTH_FAILED, "auth failed")
            raise AuthError(result.status)
        if s.bandwidth_up and result.server_rx is not None:
            rate = s.bandwidth_up if not result.server_rx else min(s.bandwidth_up, result.server_rx)
            install_brutal(quic, rate, loop.time())
        if s.quic.keep_alive_period:
            # Never less often than twice per idle timeout (as quic-go caps it), or a short
            # maxIdleTimeout would close the connection between two keep-alives.
            period = min(s.quic.keep_alive_period, s.quic.max_idle_timeout / 2)
            conn.keep_alive_task = asyncio.ensure_future(self._keep_alive(conn, period))
        self.conn = conn
        return conn

    def _pin_ok(self, quic) -> bool:
        cert = aioquic_seam.peer_certificate(quic)
        if cert is None:
            return False
        from cryptography.hazmat.primitives.serialization import Encoding
        return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest() == self.settings.pin_sha256

    async def _keep_alive(self, conn: ClientConnection, period: float) -> None:
        while not conn.closed:
            await asyncio.sleep(period)
            if not conn.closed:
                conn.quic.send_ping(0)
                conn.want_transmit()

    # -- API --------------------------------------------------------------------------------
    async def _connected_soon(self) -> ClientConnection:
        """The connection, reconnecting with backoff, but not longer than a caller can wait."""
        if self.connected:
            return self.conn
        try:
            async with asyncio.timeout(3 * CONNECT_TIMEOUT):
                return await self.ensure_connected()
        except asyncio.TimeoutError:
            raise Hy2Error(f"server {self.settings.server_host}:{self.settings.server_port} "
                           f"is unreachable") from None

    async def _open(self, address: str, early: bytes = b""):
        conn = await self._connected_soon()
        sid = conn.session.open_tcp(address, early)
        fut = conn.loop.create_future()
        conn.pending_opens[sid] = fut
        conn.want_transmit()
        # asyncio.timeout runs in this task; wait_for would start one more per stream.
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT + 5):
                resp: TcpResponse = await fut
        finally:
            conn.unclaimed.pop(sid, None)    # from here on the caller takes its data
        if not resp.ok:
            conn.session.end_stream(sid)
            conn.want_transmit()
            raise ConnectError(resp.message or f"server could not reach {address}")
        return conn, sid, resp

    async def open_tcp(self, address: str) -> tuple[asyncio.StreamReader, QuicStreamWriter]:
        """A TCP connection to ``address`` ("host:port") through the server, as asyncio streams.
        ``ConnectError`` carries the server's message when it could not dial."""
        conn, sid, resp = await self._open(address)
        reader = asyncio.StreamReader(limit=READ_LIMIT)
        reader.set_transport(_CreditValve(conn, sid))
        if resp.early:
            reader.feed_data(resp.early)
        if resp.end:
            reader.feed_eof()
        else:
            conn.readers[sid] = reader
        return reader, QuicStreamWriter(conn, sid)

    async def relay_tcp(self, address: str, transport: asyncio.Transport,
                        buffered: bytes = b"") -> RelayPump:
        """Splice an accepted local TCP connection to ``address`` through the server: its
        protocol becomes a relay pump.  ``buffered``: bytes already read from it."""
        conn, sid, resp = await self._open(address)
        return self.splice(conn, sid, resp, transport, buffered)

    def splice_streams(self, conn: ClientConnection, sid: int, resp: TcpResponse,
                       reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       prefix: bytes = b"") -> RelayPump:
        """``splice`` for a socket accepted by ``asyncio.start_server``: what its reader holds
        goes first (after ``prefix``), and its writer is kept until the relay ends, since a
        StreamWriter that is collected closes its transport (Python 3.11.5+), which is now the
        pump's."""
        buffered = prefix + bytes(reader._buffer)
        reader._buffer.clear()
        conn.socket_owners[sid] = writer
        return self.splice(conn, sid, resp, writer.transport, buffered)

    def splice(self, conn: ClientConnection, sid: int, resp: TcpResponse,
               transport: asyncio.Transport, buffered: bytes = b"") -> RelayPump:
        """Hand an accepted local socket over to a relay pump on an opened proxy stream."""
        pump = RelayPump(conn, conn.quic, sid, None, -1, False)
        conn.pumps[sid] = pump
        if conn.closed or transport.is_closing():
            pump.abort()
            return pump
        transport.set_protocol(pump)
        pump.connection_made(transport)
        if buffered:
            pump.data_received(bytes(buffered))
        if resp.early or resp.end:
            pump.from_quic(resp.early, resp.end)
            pump.flush()
        conn.want_transmit()
        return pump

    async def udp_session(self, factory=None):
        """A new UDP session: a ``UdpSession``, or ``factory(conn, session_id)`` (the local
        listeners' ``UdpPeer``, which relays in C)."""
        conn = await self._connected_soon()
        if not conn.session.udp_enabled:
            raise Hy2Error("the server does not relay UDP")
        sid = next(self._session_ids) & 0xFFFFFFFF
        udp = UdpSession(self, conn, sid) if factory is None else factory(conn, sid)
        conn.udp_sessions[sid] = udp
        return udp

    async def close(self) -> None:
        conn = self.conn
        if conn is not None and not conn.closed:
            conn.close(0x100, "client closing")
            try:
                await asyncio.wait_for(conn.terminated.wait(), 1.0)
            except asyncio.TimeoutError:
                conn._terminated(Terminated(0x100, "closed"))
        # The keep-alive task sleeps between pings: ended here, or asyncio reports it pending
        # at exit.
        task = conn.keep_alive_task if conn is not None else None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def __aenter__(self) -> "Hy2Client":
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


def simple_client(server: str, auth: str, *, insecure: bool = True, obfs: str | None = None,
                  bandwidth_up: int = 0, bandwidth_down: int = 0, sni: str | None = None,
                  pin_sha256: str | None = None, ca: str | None = None) -> Hy2Client:
    """A client from a few arguments (tests, benchmarks, scripts)."""
    host, _, port = server.rpartition(":")
    settings = ClientSettings(server_host=host.strip("[]"), server_port=int(port), auth=auth,
                              insecure=insecure, obfs_password=obfs, bandwidth_up=bandwidth_up,
                              bandwidth_down=bandwidth_down, sni=sni, pin_sha256=pin_sha256, ca=ca,
                              quic=QuicSettings())
    return Hy2Client(settings)
