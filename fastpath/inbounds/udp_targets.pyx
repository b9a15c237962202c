# cython: language_level=3
"""The target side of an inbound UDP session in batches: ``sendmmsg`` out, ``recvmmsg`` in,
counted and held to the user's cap in the same C loop.

Why it exists: a UDP session of the proxy inbounds (``udp_relay.UdpRelay``) sent each datagram
with its own ``sendto`` after parsing its address with ``ipaddress``, and read replies with one
``recvfrom`` and one ``count`` call each.  At 1200-byte datagrams that Python per datagram was
what the worker spent its time on.  Here the datagrams a client stream delivered in one read
are queued (``queue``: the "ip:port" text looked up in a small cache of socket addresses, the
payload kept by reference, no copy) and leave in one ``sendmmsg`` per socket (``flush``); a
readiness event on a target socket is one ``recvmmsg`` of up to ``RX_MAX`` replies (``recv``),
each counted on the session's slot with ``ShardWriter.add`` (so the slot's packet counts stay
one per datagram) and checked against ``ShardWriter.budget_left`` as the TCP splice and the
Hysteria 2 pumps do: the first datagram that does not fit stops the batch and sets
``over_budget``, and the relay ends the user's connections.

What stays in Python is policy: the route (an exit path's datagrams go through the mesh, not
here), name resolution (a name is resolved once per session, then queued by its address), the
kick and the session's end.  A datagram the kernel will not take now is dropped (counted in
``dropped``), as UDP may be.  Linux only, as ``hy2/quic/udp_batch.pyx``.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.errno cimport EAGAIN, EINTR, errno
from libc.stdint cimport uint16_t, uint64_t
from libc.string cimport memcmp, memcpy

from fastpath.hy2.wire.net cimport (AF_INET, AF_INET6, MSG_DONTWAIT, MSG_TRUNC, iovec,
                                    ip_sockaddr, mmsg_entry, mmsghdr, recvmmsg, sendmmsg,
                                    sockaddr_in6, sockaddr_storage, sockaddr_text, socklen_t)
from fastpath.shm.counter_table cimport ShardWriter, fp_now_ns

from fastpath.mesh.paths import split_address

cdef enum:
    TX_MAX = 64                   # datagrams queued before a flush is forced
    RX_MAX = 64                   # datagrams per recvmmsg
    RX_SLOT = 65536               # room for the largest UDP payload
    ADDR_CACHE = 64               # "ip:port" texts remembered per session

NEEDS_RESOLVING = -1              # queue(): the address is a name (or does not parse)
OVER_BUDGET = -2                  # queue(): the user's cap would be crossed

# The receive side's scratch, shared by every session of the worker: one thread runs them all,
# and ``recv`` has copied each datagram into its own bytes before it returns.
cdef unsigned char _rx_buf[RX_MAX][RX_SLOT]
cdef mmsghdr _rx_msgs[RX_MAX]
cdef iovec _rx_iov[RX_MAX]
cdef sockaddr_storage _rx_addr[RX_MAX]


cdef socklen_t _parse(str address, sockaddr_storage *out):
    """``out`` for an "a.b.c.d:port" / "[v6]:port" text; its length, 0 when it is not an IP
    literal with a port (a name: the relay resolves it)."""
    try:
        host, port = split_address(address)
    except ValueError:
        return 0
    return ip_sockaddr(host.encode("ascii", "replace"), <uint16_t>port, out)


cdef class UdpTargets:
    """One session's datagrams to and from its targets: one socket per address family
    (``attach``), a send queue flushed with ``sendmmsg``, ``recv`` with ``recvmmsg``.
    ``writer``/``slot``: the session's counter slot (``slot`` < 0: not counted, no cap)."""

    cdef ShardWriter writer
    cdef int slot
    cdef int fd4
    cdef int fd6
    cdef dict _addrs              # "ip:port" -> packed socket address
    cdef list _tx_refs            # the queued payloads, alive until flushed
    cdef mmsghdr _tx_msgs[TX_MAX]
    cdef iovec _tx_iov[TX_MAX]
    cdef sockaddr_storage _tx_addr[TX_MAX]
    cdef int _tx_fd[TX_MAX]
    cdef int n_tx
    cdef uint64_t _tx_queued
    cdef sockaddr_storage _rx_last_sa
    cdef socklen_t _rx_last_len
    cdef object _rx_last_text
    cdef readonly bint over_budget
    cdef readonly Py_ssize_t sent
    cdef readonly Py_ssize_t received
    cdef readonly Py_ssize_t dropped
    cdef readonly Py_ssize_t send_calls
    cdef readonly Py_ssize_t recv_calls

    def __init__(self, ShardWriter writer=None, int slot=-1):
        self.writer = writer
        self.slot = slot if writer is not None else -1
        self.fd4 = self.fd6 = -1
        self._addrs = {}
        self._tx_refs = []
        self.n_tx = 0
        self._tx_queued = 0
        self._rx_last_len = 0
        self._rx_last_text = None
        self.over_budget = False

    def attach(self, int family, int fd):
        """The socket toward targets of ``family`` (AF_INET / AF_INET6); -1 detaches it."""
        if family == AF_INET6:
            self.fd6 = fd
        else:
            self.fd4 = fd

    @property
    def pending(self) -> int:
        return self.n_tx

    cdef bint _fits(self, uint64_t n) noexcept:
        if self.slot < 0:
            return True
        if self.writer.budget_left(<unsigned int>self.slot) >= n:
            return True
        self.over_budget = True
        return False

    cpdef int queue(self, bytes payload, str address):
        """Queue ``payload`` for ``address`` ("ip:port"): 0 when queued, ``NEEDS_RESOLVING``,
        ``OVER_BUDGET``, or the family (AF_INET / AF_INET6) whose socket must be attached
        first."""
        cdef bytes packed = self._addrs.get(address)
        cdef sockaddr_storage sa
        cdef socklen_t n
        cdef Py_ssize_t size = PyBytes_GET_SIZE(payload)
        cdef int i, fd
        if packed is None:
            n = _parse(address, &sa)
            if n == 0:
                return NEEDS_RESOLVING
            if len(self._addrs) >= ADDR_CACHE:
                self._addrs.clear()
            packed = PyBytes_FromStringAndSize(<char *>&sa, n)
            self._addrs[address] = packed
        n = <socklen_t>PyBytes_GET_SIZE(packed)
        fd = self.fd6 if n == sizeof(sockaddr_in6) else self.fd4
        if fd < 0:
            return AF_INET6 if n == sizeof(sockaddr_in6) else AF_INET
        if not self._fits(self._tx_queued + <uint64_t>size):
            return OVER_BUDGET
        if self.n_tx == TX_MAX:
            self.flush()
        i = self.n_tx
        memcpy(&self._tx_addr[i], PyBytes_AS_STRING(packed), n)
        self._tx_iov[i].iov_base = PyBytes_AS_STRING(payload)
        self._tx_iov[i].iov_len = <size_t>size
        mmsg_entry(&self._tx_msgs[i], &self._tx_addr[i], n, &self._tx_iov[i])
        self._tx_fd[i] = fd
        self._tx_refs.append(payload)
        self._tx_queued += <uint64_t>size
        self.n_tx = i + 1
        return 0

    cpdef uint64_t flush(self):
        """Send what is queued (one ``sendmmsg`` per run of one socket's datagrams); count
        what the kernel took; return its bytes."""
        cdef int start = 0, end, done, k
        cdef uint64_t total = 0, now = fp_now_ns()
        cdef unsigned int length
        while start < self.n_tx:
            end = start
            while end < self.n_tx and self._tx_fd[end] == self._tx_fd[start]:
                end += 1
            while start < end:
                done = sendmmsg(self._tx_fd[start], &self._tx_msgs[start], end - start,
                                MSG_DONTWAIT)
                self.send_calls += 1
                if done < 0:
                    if errno == EINTR:
                        continue
                    if errno == EAGAIN:
                        self.dropped += end - start          # the kernel is full: UDP drops
                        start = end
                        break
                    self.dropped += 1                        # this one refused (ICMP, route)
                    start += 1
                    continue
                for k in range(start, start + done):
                    length = <unsigned int>self._tx_iov[k].iov_len
                    total += length
                    if self.slot >= 0:
                        self.writer.add(<unsigned int>self.slot, length, 0, now)
                self.sent += done
                start += done
            start = end
        self.n_tx = 0
        self._tx_queued = 0
        del self._tx_refs[:]
        return total

    cdef object _text(self, sockaddr_storage *sa, socklen_t n):
        """The "ip:port" text of a reply's source, reused while replies keep coming from the
        same target."""
        cdef char text[64]
        cdef size_t length
        if n == self._rx_last_len and self._rx_last_text is not None \
                and memcmp(sa, &self._rx_last_sa, n) == 0:
            return self._rx_last_text
        length = sockaddr_text(sa, text, sizeof(text))
        if length == 0:
            return None
        self._rx_last_text = text[:length].decode("ascii")
        if n <= sizeof(sockaddr_storage):
            memcpy(&self._rx_last_sa, sa, n)
            self._rx_last_len = n
        return self._rx_last_text

    def recv(self, int fd):
        """The replies waiting on ``fd``, as ``[(address, payload), ...]`` (one ``recvmmsg``),
        counted; stops at the first that would cross the user's cap (``over_budget``)."""
        cdef int n, i, tries = 0
        cdef unsigned int length
        cdef uint64_t now
        for i in range(RX_MAX):
            _rx_iov[i].iov_base = &_rx_buf[i][0]
            _rx_iov[i].iov_len = RX_SLOT
            mmsg_entry(&_rx_msgs[i], &_rx_addr[i], sizeof(sockaddr_storage), &_rx_iov[i])
        while True:
            n = recvmmsg(fd, _rx_msgs, RX_MAX, MSG_DONTWAIT, NULL)
            if n >= 0:
                break
            if errno == EINTR:
                continue
            if errno == EAGAIN:
                return []
            tries += 1               # an ICMP error of an earlier send: read on
            if tries > 4:
                return []
        self.recv_calls += 1
        out = []
        now = fp_now_ns()
        for i in range(n):
            if _rx_msgs[i].msg_hdr.msg_flags & MSG_TRUNC:
                self.dropped += 1
                continue
            length = _rx_msgs[i].msg_len
            if not self._fits(length):
                break
            address = self._text(&_rx_addr[i], _rx_msgs[i].msg_hdr.msg_namelen)
            if address is None:
                continue
            if self.slot >= 0:
                self.writer.add(<unsigned int>self.slot, 0, length, now)
            self.received += 1
            out.append((address, PyBytes_FromStringAndSize(<char *>&_rx_buf[i][0], length)))
        return out
