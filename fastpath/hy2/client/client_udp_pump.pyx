# cython: language_level=3, binding=False
"""The client's local UDP listeners, per packet in C.

A UDP forward or a SOCKS5 UDP ASSOCIATE relay reads its local socket in batches with
``recvfrom(2)``, frames each packet as a Hysteria 2 UDP message straight into its QUIC
DATAGRAM (``udp_header_put``) and queues it on the connection, which is asked to transmit
once per batch.  Replies that arrive whole are parsed in place by ``deliver_datagram`` and
written back to the local peer with ``sendto(2)`` (behind a SOCKS5 UDP header for the
SOCKS5 relay).  No Python call per packet, apart from aioquic handing over each DATAGRAM.

Each local peer (a forward's source address, or the SOCKS5 client) has its own Hysteria 2
UDP session, a ``UdpPeer``.  What is rare stays in Python (``fastpath.hy2.client.forwarding``,
``fastpath.hy2.client.socks5``): opening a session, which may mean reconnecting; idle expiry; a
packet too large for one datagram; a reply that came in fragments; a SOCKS5 domain name
that is not ASCII.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.errno cimport EAGAIN, EINTR, errno
from libc.stdio cimport snprintf
from libc.stdint cimport uint16_t, uint32_t
from libc.string cimport memcmp, memcpy
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from fastpath.hy2.wire.frames cimport MAX_ADDRESS_LEN, UdpWhole, udp_header_put, udp_header_size, udp_whole_message
from fastpath.hy2.wire.net cimport (AF_INET, AF_INET6, MSG_DONTWAIT, ip_port_text, recvfrom, sendto,
                               sockaddr, sockaddr_storage, socklen_t)

cdef enum:
    BATCH_C = 64                 # packets read per readiness event
    MAX_QUEUED_C = 512           # as Hy2QuicConnection.queue_datagram
    RECV_SIZE_C = 65535
    SOCKS_HEADER_MAX = 4 + 1 + 255 + 2     # RSV, FRAG, ATYP, a domain of 255 bytes, port
    ATYP_V4 = 1
    ATYP_DOMAIN = 3
    ATYP_V6 = 4

BATCH = BATCH_C

# One buffer for reading and one for writing, shared by every relay: the event loop runs one
# callback at a time and none of these functions awaits.
cdef unsigned char _rbuf[65536]
cdef unsigned char _wbuf[SOCKS_HEADER_MAX + 65536]


cdef inline double _monotonic() noexcept nogil:
    """``time.monotonic()`` (and so the event loop's clock) without a Python call."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


cdef inline int snprintf_port(char *out, uint16_t port) noexcept nogil:
    """":port" at ``out`` (room for 7 bytes); its length."""
    return snprintf(out, 8, ":%u", <unsigned int>port)


cdef class UdpPeer:
    """One local peer's Hysteria 2 UDP session on one client connection.

    Stands in ``ClientConnection.udp_sessions`` beside the API's ``UdpSession``: it has the
    same ``_deliver`` (a reply from the Python path) and ``close``.
    """
    cdef LocalUdpRelay relay
    cdef readonly uint32_t session_id
    cdef readonly object conn            # the ClientConnection
    cdef object quic
    cdef object pending                  # the QUIC connection's queue of DATAGRAM frames
    cdef sockaddr_storage addr           # where replies go
    cdef socklen_t addr_len
    cdef readonly bytes key              # the peer's address as bytes (the relay's index)
    cdef public double last_active
    cdef readonly bint closed
    # The last reply source and its SOCKS5 address bytes (ATYP..port).
    cdef bytes last_source
    cdef bytes last_socks_addr

    def __init__(self, LocalUdpRelay relay not None, conn, uint32_t session_id, bytes key not None):
        if PyBytes_GET_SIZE(key) > <Py_ssize_t>sizeof(sockaddr_storage) or PyBytes_GET_SIZE(key) < 2:
            raise ValueError("not a socket address")
        self.relay = relay
        self.conn = conn
        self.quic = conn.quic
        self.pending = conn.quic._datagrams_pending
        self.session_id = session_id
        self.key = key
        self._set_addr(<const unsigned char *>PyBytes_AS_STRING(key), <socklen_t>PyBytes_GET_SIZE(key))
        self.last_active = _monotonic()

    cdef void _set_addr(self, const unsigned char *addr, socklen_t n) noexcept:
        memcpy(&self.addr, addr, n)
        self.addr_len = n

    # -- toward the server ------------------------------------------------------------------
    cdef int send(self, const char *address, size_t alen, const unsigned char *payload,
                  size_t n, size_t room) except -1:
        """Frame and queue one packet for ``address``: 1 if queued."""
        cdef size_t header = udp_header_size(alen)
        cdef bytes msg
        cdef unsigned char *out
        if n == 0 or alen == 0 or alen > MAX_ADDRESS_LEN:
            return 0
        if header + n > room:
            # Too large for one datagram: the rare path, fragments made in Python.
            return 1 if self.conn.session.send_udp(
                self.session_id, PyBytes_FromStringAndSize(address, alen).decode("utf-8", "replace"),
                PyBytes_FromStringAndSize(<const char *>payload, n)) else 0
        if len(self.pending) >= MAX_QUEUED_C:
            return 0
        msg = PyBytes_FromStringAndSize(NULL, header + n)
        out = <unsigned char *>PyBytes_AS_STRING(msg)
        udp_header_put(out, self.session_id, 0, 0, 1, address, alen)
        memcpy(out + header, payload, n)
        self.pending.append(msg)
        return 1

    # -- back to the local peer -------------------------------------------------------------
    cdef int reply(self, const char *source, size_t slen, const unsigned char *payload,
                   size_t n) except -1:
        """Write one reply from ``source`` ("host:port") to the local peer."""
        cdef const unsigned char *data = payload
        cdef size_t total = n
        cdef bytes head
        cdef size_t hlen
        if self.closed:
            return 0
        self.last_active = _monotonic()
        if self.relay.socks:
            head = self._socks_address(source, slen)
            if head is None:
                return 0
            hlen = <size_t>PyBytes_GET_SIZE(head)
            if n > sizeof(_wbuf) - 3 - hlen:
                return 0
            _wbuf[0] = 0
            _wbuf[1] = 0
            _wbuf[2] = 0
            memcpy(_wbuf + 3, PyBytes_AS_STRING(head), hlen)
            memcpy(_wbuf + 3 + hlen, payload, n)
            data = _wbuf
            total = 3 + hlen + n
        # A full buffer or an ICMP error: UDP drops it.
        sendto(self.relay.fd, data, total, MSG_DONTWAIT, <sockaddr *>&self.addr, self.addr_len)
        return 1

    cdef bytes _socks_address(self, const char *source, size_t slen):
        """ATYP + address + port of a reply's source, cached for the last source."""
        cdef bytes last = self.last_source
        if (last is not None and <size_t>PyBytes_GET_SIZE(last) == slen
                and memcmp(PyBytes_AS_STRING(last), source, slen) == 0):
            return self.last_socks_addr
        text = PyBytes_FromStringAndSize(source, slen)
        try:
            head = self.relay.encode_address(text.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        self.last_source = text
        self.last_socks_addr = head
        return head

    def _deliver(self, str address not None, bytes payload not None):
        """A reply from the Python path (one that came in fragments)."""
        cdef bytes text = address.encode("utf-8")
        self.reply(PyBytes_AS_STRING(text), <size_t>PyBytes_GET_SIZE(text),
                   <const unsigned char *>PyBytes_AS_STRING(payload), <size_t>PyBytes_GET_SIZE(payload))

    def close(self):
        if self.closed:
            return
        self.closed = True
        udp_sessions = getattr(self.conn, "udp_sessions", None)
        if udp_sessions is not None and udp_sessions.get(self.session_id) is self:
            del udp_sessions[self.session_id]
        self.relay._forget(self)


cdef class LocalUdpRelay:
    """A local UDP socket whose packets travel through a Hysteria 2 client.

    ``remote`` ("host:port") makes it a UDP forward: every packet goes there, and each source
    address is its own peer.  ``socks=True`` makes it a SOCKS5 UDP relay: each packet carries
    its destination in a SOCKS5 UDP header, and there is one peer, the association's client,
    whose replies go to the address it last sent from.  ``on_new_peer(key, packet)`` is called
    for a packet from a source without an open peer (``key``: the source's socket address as
    bytes); the owner opens a session, makes a ``UdpPeer`` and ``add_peer``s it, then hands the
    packets it kept meanwhile to ``send_from``.
    """
    cdef object loop
    cdef object sock
    cdef readonly int fd
    cdef readonly bint socks
    cdef bytes remote                    # a forward's destination (UTF-8)
    cdef readonly dict peers             # key -> UdpPeer
    cdef UdpPeer last                    # the peer of the last packet
    cdef object on_new_peer
    cdef public object encode_address    # "host:port" -> SOCKS5 ATYP..port bytes
    cdef public object decode_address    # SOCKS5 ATYP.. bytes -> ("host:port", used)
    cdef readonly bint closed
    # The SOCKS5 destination of the last packet: its header bytes and its "host:port".
    cdef unsigned char last_head[SOCKS_HEADER_MAX]
    cdef size_t last_head_len
    cdef char last_dest[300]
    cdef size_t last_dest_len

    def __init__(self, loop, sock, on_new_peer, str remote=None, bint socks=False,
                 encode_address=None, decode_address=None):
        if (remote is None) == (not socks):
            raise ValueError("a relay is either a forward (remote) or a SOCKS5 relay (socks)")
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.socks = socks
        self.remote = remote.encode("utf-8") if remote is not None else None
        self.peers = {}
        self.on_new_peer = on_new_peer
        self.encode_address = encode_address
        self.decode_address = decode_address

    def start(self):
        self.loop.add_reader(self.fd, self._readable)

    def add_peer(self, UdpPeer peer not None):
        old = self.peers.get(peer.key)
        self.peers[peer.key] = peer
        if old is not None and old is not peer:
            (<UdpPeer>old).close()
        self.last = peer

    def send_from(self, UdpPeer peer not None, bytes packet not None):
        """Send one packet read before ``peer`` was open (as if it were read now)."""
        cdef size_t room = self.quic_room(peer)
        if self._relay(peer, <const unsigned char *>PyBytes_AS_STRING(packet),
                       <size_t>PyBytes_GET_SIZE(packet), room):
            peer.conn.want_transmit()

    cdef size_t quic_room(self, UdpPeer peer) except? 0:
        return <size_t>peer.quic.datagram_room()

    cdef void _forget(self, UdpPeer peer) noexcept:
        if self.peers.get(peer.key) is peer:
            del self.peers[peer.key]
        if self.last is peer:
            self.last = None

    # -- packets from the local side --------------------------------------------------------
    def _readable(self):
        cdef sockaddr_storage src
        cdef socklen_t src_len
        cdef ssize_t n
        cdef int i
        cdef UdpPeer peer
        cdef UdpPeer sent_via = None     # the peer whose connection must transmit
        cdef list others = None          # more of them (peers on an older connection)
        cdef double now = _monotonic()
        cdef size_t room = 0
        for i in range(BATCH_C):
            if self.closed:
                break
            src_len = sizeof(src)
            n = recvfrom(self.fd, _rbuf, RECV_SIZE_C, MSG_DONTWAIT, <sockaddr *>&src, &src_len)
            if n < 0:
                if errno == EAGAIN or errno == EINTR:     # EWOULDBLOCK is EAGAIN on Linux
                    break
                continue             # an ICMP error from an earlier reply: keep reading
            if n == 0:
                continue
            peer = self._peer_of(&src, src_len)
            if peer is None:
                self.on_new_peer(PyBytes_FromStringAndSize(<char *>&src, src_len),
                                 PyBytes_FromStringAndSize(<char *>_rbuf, n))
                continue
            peer.last_active = now
            if sent_via is None or peer.conn is not sent_via.conn:
                room = self.quic_room(peer)
            if not self._relay(peer, _rbuf, <size_t>n, room):
                continue
            if sent_via is None:
                sent_via = peer
            elif peer.conn is not sent_via.conn:
                if others is None:
                    others = []
                others.append(peer.conn)
        if sent_via is not None:
            sent_via.conn.want_transmit()
            if others is not None:
                for conn in others:
                    conn.want_transmit()

    cdef UdpPeer _peer_of(self, sockaddr_storage *src, socklen_t src_len):
        """The open peer a packet from ``src`` belongs to, or None."""
        cdef UdpPeer peer = self.last
        if self.socks:
            # One peer per association; replies follow the address it last sent from.
            if peer is None or peer.closed:
                return None
            if src_len != peer.addr_len or memcmp(src, &peer.addr, src_len) != 0:
                peer._set_addr(<const unsigned char *>src, src_len)
            return peer
        if peer is not None and src_len == peer.addr_len and memcmp(src, &peer.addr, src_len) == 0:
            return peer
        found = self.peers.get(PyBytes_FromStringAndSize(<char *>src, src_len))
        if found is None:
            return None
        self.last = <UdpPeer>found
        return self.last

    cdef int _relay(self, UdpPeer peer, const unsigned char *pkt, size_t n, size_t room) except -1:
        """One local packet to the server: 1 if queued."""
        cdef Py_ssize_t used
        if not self.socks:
            return peer.send(PyBytes_AS_STRING(self.remote), <size_t>PyBytes_GET_SIZE(self.remote),
                             pkt, n, room)
        used = self._socks_destination(pkt, n)
        if used <= 0:
            return 0
        return peer.send(self.last_dest, self.last_dest_len, pkt + used, n - <size_t>used, room)

    cdef Py_ssize_t _socks_destination(self, const unsigned char *pkt, size_t n) except -2:
        """Parse a SOCKS5 UDP request header into ``last_dest``: the header's length, or 0
        for a packet to drop (a fragment, a malformed header, no payload)."""
        cdef size_t end
        cdef uint16_t port
        cdef size_t i
        if n < 4 or pkt[2] != 0:         # FRAG != 0: fragments are not supported
            return 0
        if pkt[3] == ATYP_V4:
            end = 4 + 4 + 2
        elif pkt[3] == ATYP_V6:
            end = 4 + 16 + 2
        elif pkt[3] == ATYP_DOMAIN:
            if n < 5 or pkt[4] == 0:
                return 0
            end = 5 + <size_t>pkt[4] + 2
        else:
            return 0
        if n <= end:
            return 0
        if end == self.last_head_len and memcmp(pkt, self.last_head, end) == 0:
            return <Py_ssize_t>end
        port = (<uint16_t>pkt[end - 2] << 8) | pkt[end - 1]
        if pkt[3] == ATYP_DOMAIN:
            for i in range(pkt[4]):
                if pkt[5 + i] < 0x21 or pkt[5 + i] > 0x7e:
                    return self._socks_destination_slow(pkt, end)
            memcpy(self.last_dest, pkt + 5, pkt[4])
            self.last_dest_len = pkt[4] + <size_t>snprintf_port(self.last_dest + pkt[4], port)
        else:
            self.last_dest_len = ip_port_text(AF_INET if pkt[3] == ATYP_V4 else AF_INET6, pkt + 4,
                                              port, self.last_dest, sizeof(self.last_dest))
            if self.last_dest_len == 0:
                return 0
        memcpy(self.last_head, pkt, end)
        self.last_head_len = end
        return <Py_ssize_t>end

    cdef Py_ssize_t _socks_destination_slow(self, const unsigned char *pkt, size_t end) except -2:
        """A domain that is not printable ASCII: decoded in Python, as the TCP side does."""
        try:
            text = self.decode_address(PyBytes_FromStringAndSize(<const char *>pkt, end), 3)[0]
        except ValueError:
            return 0
        cdef bytes raw = text.encode("utf-8")
        if PyBytes_GET_SIZE(raw) > <Py_ssize_t>sizeof(self.last_dest):
            return 0
        memcpy(self.last_dest, PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))
        self.last_dest_len = <size_t>PyBytes_GET_SIZE(raw)
        self.last_head_len = 0           # not cached
        return <Py_ssize_t>end

    # -- end --------------------------------------------------------------------------------
    def close(self):
        if self.closed:
            return
        self.closed = True
        try:
            self.loop.remove_reader(self.fd)
        except (ValueError, OSError):
            pass
        for peer in list(self.peers.values()):
            (<UdpPeer>peer).close()
        if self.last is not None:
            self.last.close()
        self.sock.close()


def deliver_datagram(dict sessions not None, data):
    """One DATAGRAM frame from the server: a whole UDP message for a ``UdpPeer`` is written
    to its local peer here.  False when the Python path must take it (a fragment, or a
    session of the ``UdpSession`` API); True when it was delivered or dropped."""
    cdef UdpWhole m
    cdef const unsigned char *buf
    cdef int kind
    if type(data) is not bytes:
        return False
    buf = <const unsigned char *>PyBytes_AS_STRING(data)
    kind = udp_whole_message(buf, <size_t>PyBytes_GET_SIZE(data), &m)
    if kind != 1:
        return kind < 0                           # malformed: dropped; a fragment: Python
    target = sessions.get(m.session_id)
    if type(target) is not UdpPeer:
        return target is None                     # unknown: drop; the API's session: Python
    (<UdpPeer>target).reply(<const char *>buf + m.address, m.address_len, buf + m.payload,
                            <size_t>PyBytes_GET_SIZE(data) - m.payload)
    return True
