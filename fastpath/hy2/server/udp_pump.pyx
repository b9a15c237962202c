# cython: language_level=3, binding=False
"""The outbound side of one server UDP session, per packet in C: send, receive, frame, count.

Toward the target, a packet is looked up in the session's table of destinations (one
``sockaddr`` each, made once) and sent with ``sendto(2)``; its bytes are counted with
``ShardWriter.add``.  Each reply read with ``recvfrom(2)`` becomes a Hysteria 2 UDP message
written straight into its datagram (``udp_header_put``), queued on the QUIC connection and
counted the same way; the connection is asked to transmit once per batch of replies.  No
Python call per packet, apart from the socket being a Python object for the event loop.

From the client, ``datagram_from_client`` sends a whole message to the destination its
session sent to last straight from the DATAGRAM's bytes.  Within one batch of QUIC datagrams
(``begin_batch`` / ``end_batch``, the server's ``_on_batch``), consecutive messages of one
session to one destination and of one size (the last may be shorter) are copied into one
buffer and leave in one ``sendmsg`` with ``UDP_SEGMENT``: the kernel cuts them into the same
datagrams, but routes, filters and queues the run once instead of once per datagram (measured:
``sendto`` was a third of the worker's busy time in a UDP relay).  A kernel or device that
refuses segmentation gets one ``sendto`` per datagram, as before.

What is rare stays in Python (``fastpath.hy2.wire.udp_relay``, ``fastpath.hy2.wire.udp_sessions``): a
new session or "host:port", resolving names, reassembling fragments, fragmenting a reply too
large for one datagram.
"""
import asyncio
import os
import socket

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.errno cimport EAGAIN, EINTR, EINVAL, EIO, ENOPROTOOPT, EOPNOTSUPP, errno
from libc.stdint cimport uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy

from fastpath.hy2.wire.frames cimport UdpWhole, udp_header_put, udp_header_size, udp_whole_message
from fastpath.shm.counter_table cimport ShardWriter, fp_now_ns
from fastpath.hy2.wire.udp_relay import MAX_NAMES, literal_ip
from fastpath.mesh.paths import split_address

from fastpath.hy2.quic.udp_batch import kernel_features
from fastpath.hy2.wire.net cimport (AF_INET, AF_INET6, GSO_MAX_BYTES, GSO_MAX_SEGMENTS,
                                 MSG_DONTWAIT, inet_ntop, iovec, ip_sockaddr, msghdr, ntohs,
                                 recvfrom, sendmsg, sendto, sockaddr, sockaddr_in6,
                                 sockaddr_storage, sockaddr_text, socklen_t,
                                 udp_segment_control)

cdef enum:
    BATCH_C = 64                 # replies read per readiness event
    # Destinations remembered per session (literal addresses and resolved names alike); a
    # client spraying packets at more than this many starts the table over.
    MAX_TARGETS_C = 256
    MAX_QUEUED_C = 512           # as Hy2QuicConnection.queue_datagram
    RECV_SIZE_C = 65535

BATCH = BATCH_C
MAX_TARGETS = MAX_TARGETS_C
MAX_QUEUED_DATAGRAMS = MAX_QUEUED_C

# One receive buffer for every pump: the event loop runs one reader at a time.
cdef unsigned char _rbuf[65536]


cdef class _Target:
    """One destination: its socket's descriptor and its ``sockaddr``; ``no_gso`` once the path
    to it refused a segmented send (a device without checksum offload answers EIO)."""
    cdef int fd
    cdef sockaddr_storage addr
    cdef socklen_t addr_len
    cdef bint no_gso


# The run being gathered toward one target, for every pump: one at a time, since a batch's
# datagrams are handled one after another; a datagram that does not extend it sends it first.
cdef unsigned char _run_buf[GSO_MAX_BYTES]
cdef size_t _run_used = 0, _run_seg = 0
cdef int _run_count = 0
cdef bint _run_short = False         # a shorter datagram ended it
cdef UdpPump _run_pump = None
cdef _Target _run_target = None
cdef bint _batching = False


def _kernel_has_gso():
    """A kernel without UDP_SEGMENT would ignore the control message and send the run as one
    datagram, so it is asked first, once (the QUIC endpoint's probe)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        return kernel_features(probe)[0]


cdef bint _kernel_gso = _kernel_has_gso()
# ``FASTPATH_UDP_TARGET_GSO=0``: one ``sendto`` per datagram (the benchmarks' baseline).
cdef bint _gso = (os.environ.get("FASTPATH_UDP_TARGET_GSO", "1") != "0"
                  and _kernel_gso)  # False too once the kernel refuses UDP_SEGMENT
cdef Py_ssize_t _gso_sends = 0, _gso_datagrams = 0, _fallback_sends = 0


def begin_batch():
    """From here to ``end_batch``, messages toward targets may be gathered into runs."""
    global _batching
    _batching = True


def end_batch():
    """Send the run being gathered, and send at once again until the next ``begin_batch``."""
    global _batching
    _batching = False
    _flush_run()


def set_gso(bint on):
    """Gather runs (the default where the kernel has UDP_SEGMENT) or send one datagram per
    ``sendto``, as a baseline; returns whether runs are gathered now."""
    global _gso
    _flush_run()
    _gso = on and _kernel_gso
    return _gso


def run_stats():
    """(segmented sends, datagrams in them, datagrams resent one by one after a refusal)."""
    return _gso_sends, _gso_datagrams, _fallback_sends


cdef void _flush_run() noexcept:
    """Send the gathered run: one ``sendto`` for one datagram, else one ``sendmsg`` with
    ``UDP_SEGMENT``; count what left on its pump's slot, then report a cap it reached."""
    global _run_pump, _run_target, _run_used, _run_count, _gso, _gso_sends, _gso_datagrams
    global _fallback_sends
    cdef UdpPump pump = _run_pump
    cdef _Target t = _run_target
    cdef size_t used = _run_used, seg = _run_seg, off, n, sent = 0
    cdef int count = _run_count, k, packets = 0, err
    cdef msghdr m
    cdef iovec iov
    cdef unsigned long long ctrl[4]  # 32 bytes, aligned: UDP_SEGMENT needs 24
    if pump is None:
        return
    _run_pump = None
    _run_target = None
    _run_used = 0
    _run_count = 0
    if count == 1:
        if sendto(t.fd, _run_buf, used, MSG_DONTWAIT, <sockaddr *>&t.addr, t.addr_len) >= 0:
            sent, packets = used, 1
    else:
        iov.iov_base = _run_buf
        iov.iov_len = used
        m.msg_name = &t.addr
        m.msg_namelen = t.addr_len
        m.msg_iov = &iov
        m.msg_iovlen = 1
        m.msg_flags = 0
        udp_segment_control(&m, ctrl, <uint16_t>seg)
        if sendmsg(t.fd, &m, MSG_DONTWAIT) >= 0:
            sent, packets = used, count
            _gso_sends += 1
            _gso_datagrams += count
        else:
            err = errno
            if err == EINVAL or err == EIO or err == EOPNOTSUPP or err == ENOPROTOOPT:
                # Refused: EIO (a device without checksum offload) and EINVAL (segments larger
                # than the path's MTU) for this destination, the others for every one.
                t.no_gso = True
                if err == EOPNOTSUPP or err == ENOPROTOOPT:
                    _gso = False
                off = 0
                for k in range(count):
                    n = seg if used - off > seg else used - off
                    _fallback_sends += 1
                    if sendto(t.fd, _run_buf + off, n, MSG_DONTWAIT, <sockaddr *>&t.addr,
                              t.addr_len) >= 0:
                        sent += n
                        packets += 1
                    off += n
            # else a full buffer or an ICMP error: UDP drops the run
    if sent and pump.slot >= 0:
        pump.writer.add_tx_run(<uint32_t>pump.slot, sent, <uint64_t>packets, fp_now_ns())
    if not packets:
        pump._last_call = False
    pump._spent_check()


cdef class UdpPump:
    """One UDP session's outbound sockets (one per address family, as the reference opens).

    ``owner`` is the server connection: ``want_transmit()`` after queuing replies and
    ``send_fragmented(session_id, address, payload)`` for a reply that needs fragments.
    """
    cdef object loop
    cdef object owner
    cdef object quic
    cdef object pending              # the QUIC connection's queue of DATAGRAM frames
    cdef readonly object session     # the UdpSession (its ``last_active``)
    cdef readonly uint32_t session_id
    cdef ShardWriter writer
    cdef readonly int slot           # counter slot, -1 when not counting
    cdef dict socks                  # family -> socket.socket
    cdef dict targets                # "host:port" -> _Target
    cdef int names                   # resolved names among the targets
    cdef readonly bint closed
    cdef bint _last_call             # set by _over: this datagram reaches the user's cap
    # The last reply source and its "ip:port": a session's replies nearly always come from
    # the one address it sends to.
    cdef sockaddr_storage last_src
    cdef socklen_t last_src_len
    cdef bytes last_src_text
    # The last destination sent to and its target: what ``datagram_from_client`` matches.
    cdef bytes last_dest
    cdef _Target last_target

    def __init__(self, loop, owner, quic, session, ShardWriter writer=None, int slot=-1):
        self.loop = loop
        self.owner = owner
        self.quic = quic
        self.pending = quic._datagrams_pending
        self.session = session
        self.session_id = session.session_id
        self.writer = writer
        self.slot = slot if writer is not None else -1
        self.socks = {}
        self.targets = {}

    # -- toward the target ------------------------------------------------------------------
    def send(self, str address not None, bytes payload not None):
        """Send ``payload`` to ``address`` ("host:port"); dropped silently if it cannot be."""
        if self.closed:
            return
        cdef _Target t = self.targets.get(address)
        if t is None:
            self._new_target(address, payload)
            return
        self.last_dest = address.encode("utf-8")
        self.last_target = t
        self._send_to(t, payload)

    cdef bint send_if_last(self, const unsigned char *address, size_t alen,
                           const unsigned char *payload, size_t n) noexcept:
        """Send to ``address`` if it is the destination sent to last: False if it is not."""
        cdef bytes last = self.last_dest
        if (self.closed or last is None or <size_t>PyBytes_GET_SIZE(last) != alen
                or memcmp(PyBytes_AS_STRING(last), address, alen) != 0):
            return False
        self._send_raw(self.last_target, payload, n)
        return True

    cdef void _send_to(self, _Target t, bytes payload) noexcept:
        self._send_raw(t, <const unsigned char *>PyBytes_AS_STRING(payload),
                       <size_t>PyBytes_GET_SIZE(payload))

    cdef bint _over(self, size_t n, size_t pending=0) noexcept:
        """The user's traffic cap (``ShardWriter.budget_left``, less the ``pending`` bytes of a
        run not yet sent): True when nothing is left, so the datagram is dropped; one that
        reaches the cap goes (a datagram is not cut short) and then the owner is told
        (``budget_spent``), which closes the user's connections.  So UDP stops within one
        datagram past a traffic limit."""
        cdef unsigned long long left
        if self.slot < 0:
            return False
        left = self.writer.budget_left(<uint32_t>self.slot)
        left = left - pending if left > pending else 0
        if left == 0:
            self.owner.budget_spent(self)
            return True
        self._last_call = left <= n
        return False

    cdef void _spent_check(self) noexcept:
        if self._last_call:
            self._last_call = False
            self.owner.budget_spent(self)

    cdef void _send_raw(self, _Target t, const unsigned char *payload, size_t n) noexcept:
        # A message larger than the run buffer (a reassembled one can be) is sent alone.
        if _batching and _gso and not t.no_gso and n <= GSO_MAX_BYTES:
            self._gather(t, payload, n)
            return
        _flush_run()                 # what was gathered goes first
        if self._over(n):
            return
        if sendto(t.fd, payload, n, MSG_DONTWAIT, <sockaddr *>&t.addr, t.addr_len) < 0:
            self._last_call = False
            return                   # a full buffer or an ICMP error: UDP drops it
        if self.slot >= 0:
            self.writer.add(<uint32_t>self.slot, <unsigned long long>n, 0, fp_now_ns())
        self._spent_check()

    cdef void _gather(self, _Target t, const unsigned char *payload, size_t n) noexcept:
        """Add a datagram to the run (starting one if it does not extend it); a datagram that
        reaches the user's cap sends the run at once."""
        global _run_pump, _run_target, _run_used, _run_seg, _run_count, _run_short
        if self._over(n, _run_used if _run_pump is self else 0):
            return
        if not (_run_target is t and _run_pump is self and not _run_short and n <= _run_seg
                and _run_count < GSO_MAX_SEGMENTS and _run_used + n <= GSO_MAX_BYTES):
            _flush_run()
            _run_pump = self
            _run_target = t
            _run_seg = n
            _run_short = False
        memcpy(_run_buf + _run_used, payload, n)
        _run_used += n
        _run_count += 1
        if n < _run_seg:
            _run_short = True
        if self._last_call:
            _flush_run()

    def _new_target(self, address, payload):
        try:
            host, port = split_address(address)
        except ValueError:
            return
        ip = literal_ip(host)
        if ip is not None:
            self._send_to(self._remember(address, str(ip), port, ip.version), payload)
            return
        if self.names >= MAX_NAMES:
            return
        asyncio.ensure_future(_resolve_and_send(self, address, host, port, payload))

    cdef _Target _remember(self, str address, str ip, int port, int version):
        cdef _Target t = _Target.__new__(_Target)
        cdef int family = AF_INET6 if version == 6 else AF_INET
        t.addr_len = ip_sockaddr(ip.encode(), <uint16_t>port, &t.addr)   # ``ip``: a checked literal
        t.fd = self._sock(family).fileno()
        if len(self.targets) >= MAX_TARGETS_C:
            self.targets.clear()
            self.names = 0
        self.targets[address] = t
        self.last_dest = address.encode("utf-8")
        self.last_target = t
        return t

    cdef object _sock(self, int family):
        sock = self.socks.get(family)
        if sock is None:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind(("::" if family == AF_INET6 else "0.0.0.0", 0))
            self.socks[family] = sock
            self.loop.add_reader(sock.fileno(), self._readable, sock.fileno())
        return sock

    # -- replies ----------------------------------------------------------------------------
    def _readable(self, int fd):
        cdef sockaddr_storage src
        cdef socklen_t src_len
        cdef ssize_t n
        cdef size_t room = self.quic.datagram_room()
        cdef int i, got = 0, queued = 0
        for i in range(BATCH_C):
            if self.closed:
                break
            src_len = sizeof(src)
            n = recvfrom(fd, _rbuf, RECV_SIZE_C, MSG_DONTWAIT, <sockaddr *>&src, &src_len)
            if n < 0:
                if errno == EAGAIN or errno == EINTR:     # EWOULDBLOCK is EAGAIN on Linux
                    break
                continue             # an ICMP error from an earlier send: keep reading
            if n == 0:
                continue
            got += 1
            queued += self._reply(&src, src_len, n, room)
        if got:                      # a reply keeps the session alive, queued or not
            self.session.last_active = self.loop.time()
        if queued:
            self.owner.want_transmit()

    cdef int _reply(self, sockaddr_storage *src, socklen_t src_len, ssize_t n,
                    size_t room) except -1:
        """Frame and queue one reply: 1 if queued."""
        cdef bytes text = self._source_text(src, src_len)
        cdef size_t alen = <size_t>PyBytes_GET_SIZE(text)
        cdef size_t header = udp_header_size(alen)
        cdef bytes msg
        cdef unsigned char *out
        if self._over(<size_t>n):
            return 0
        if header + <size_t>n > room:
            # Too large for one datagram: the rare path, fragments made in Python.
            sent = self.owner.send_fragmented(self.session_id, text.decode(),
                                              PyBytes_FromStringAndSize(<char *>_rbuf, n))
            if sent and self.slot >= 0:
                self.writer.add(<uint32_t>self.slot, 0, <unsigned long long>n, fp_now_ns())
            if sent:
                self._spent_check()
            self._last_call = False
            return 1 if sent else 0
        if len(self.pending) >= MAX_QUEUED_C:
            self._last_call = False
            return 0
        msg = PyBytes_FromStringAndSize(NULL, header + n)
        out = <unsigned char *>PyBytes_AS_STRING(msg)
        udp_header_put(out, self.session_id, 0, 0, 1, PyBytes_AS_STRING(text), alen)
        memcpy(out + header, _rbuf, n)
        self.pending.append(msg)
        if self.slot >= 0:
            self.writer.add(<uint32_t>self.slot, 0, <unsigned long long>n, fp_now_ns())
        self._spent_check()
        return 1

    cdef bytes _source_text(self, sockaddr_storage *src, socklen_t src_len):
        """The source as "ip:port" / "[v6]:port" (UTF-8), from the one-entry cache if it
        repeats."""
        if (self.last_src_text is not None and src_len == self.last_src_len
                and memcmp(src, &self.last_src, src_len) == 0):
            return self.last_src_text
        cdef char buf[64]
        text = PyBytes_FromStringAndSize(buf, <Py_ssize_t>sockaddr_text(src, buf, sizeof(buf)))
        memcpy(&self.last_src, src, src_len)
        self.last_src_len = src_len
        self.last_src_text = text
        return text

    # -- end --------------------------------------------------------------------------------
    def close(self):
        if _run_pump is self:
            _flush_run()             # its sockets are still open
        self.closed = True
        for sock in self.socks.values():
            try:
                self.loop.remove_reader(sock.fileno())
            except (ValueError, OSError):
                pass
            sock.close()
        self.socks.clear()
        self.targets.clear()
        self.last_dest = None
        self.last_target = None


async def _resolve_and_send(UdpPump pump, str address, host, int port, bytes payload):
    """A name, resolved once per session: its first packet waits for the answer."""
    try:
        infos = await pump.loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError:
        return
    if not infos or pump.closed:
        return
    family, _, _, _, sockaddr = infos[0]
    pump.names += 1
    pump._send_to(pump._remember(address, sockaddr[0], port,
                                 6 if family == socket.AF_INET6 else 4), payload)


def datagram_from_client(dict sessions not None, data, double now):
    """One DATAGRAM from an authenticated client, in C when it is the common case: a whole UDP
    message for a session whose pump is open, to the destination that session sent to last.
    False when the Python path must take it (a new session or destination, a fragment, a
    malformed message, which that path drops)."""
    cdef UdpWhole m
    cdef const unsigned char *buf
    if type(data) is not bytes:
        return False
    buf = <const unsigned char *>PyBytes_AS_STRING(data)
    if udp_whole_message(buf, <size_t>PyBytes_GET_SIZE(data), &m) != 1:
        return False
    session = sessions.get(m.session_id)
    if session is None:
        return False
    pump = session.handle
    if type(pump) is not UdpPump or not (<UdpPump>pump).send_if_last(
            buf + m.address, m.address_len, buf + m.payload,
            <size_t>PyBytes_GET_SIZE(data) - m.payload):
        return False
    session.last_active = now
    return True


cdef class ClientDatagrams:
    """The server connection's ``datagram_sink`` once its client may send UDP
    (``Hy2QuicConnection.datagram_sink``): the compiled receive path hands it each DATAGRAM's
    payload as the frame is read, so the common message (a whole one, for a session whose
    pump is open, to the destination it sent to last) goes to its target without an event, a
    trip through the connection's event loop or a Python frame.  False: the event is made and
    the Python path takes the message (``datagram_from_client``'s cases)."""
    cdef dict sessions

    def __init__(self, dict sessions not None):
        self.sessions = sessions

    def __call__(self, data, double now):
        return datagram_from_client(self.sessions, data, now)
