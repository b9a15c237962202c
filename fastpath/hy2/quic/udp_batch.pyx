# cython: language_level=3
"""The QUIC socket in batches: ``recvmmsg``/``sendmmsg``, UDP GSO and GRO, Salamander in the
same C loop.

``BatchEndpoint`` is a drop-in for ``udp_endpoint.UdpEndpoint`` (same ``start``/``close``/
``send``/``local_address``/``dropped``, the same ``on_batch([(data, addr), ...])`` callback).
Why it exists: a download's server worker spent about an eighth of its time in one ``sendmsg``
per datagram and more in Python around each ``recvfrom``.  Here one readiness event is one
``recvmmsg`` for up to a slot-full of datagrams, and one ``send`` call is as few ``sendmmsg``
calls as the batch needs, each message a run of equal-sized datagrams to one peer sent with
``UDP_SEGMENT`` (the kernel cuts it, or on loopback hands it whole to a GRO socket).

What the kernel has is probed once per socket: ``UDP_GRO`` (receive coalesced runs, cut here
by the ``UDP_GRO`` segment size), ``UDP_SEGMENT`` (else one message per datagram, still one
``sendmmsg``).  A GSO send the device refuses (EIO, EINVAL...) turns GSO off for the socket and
resends those datagrams one by one.  Where this module cannot be built (not Linux),
``udp_endpoint.make_endpoint`` falls back to the plain endpoint; ``FASTPATH_UDP_BATCH=0`` forces
that fallback for comparison.

Hand-written rather than a library: no maintained Python package offers mmsg with GSO/GRO on
an asyncio loop, and the point is to stay in C for the per-datagram loop.  aioquic still
takes one ``bytes`` per datagram (``receive_datagram``) and returns ``(bytes, addr)`` pairs, so
those objects remain; everything else per datagram (copy, Salamander, address handling,
segmenting) is C.
"""
import socket

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from libc.errno cimport (EAGAIN, EINTR, EINVAL, EIO, ENOBUFS, ENOPROTOOPT, EOPNOTSUPP,
                         errno)
from libc.stdint cimport uint16_t, uint32_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset

from fastpath.hy2.wire.net cimport (AF_INET, AF_INET6, CMSG_DATA, CMSG_FIRSTHDR, CMSG_NXTHDR,
                               GSO_MAX_BYTES, GSO_MAX_SEGMENTS,
                               MSG_DONTWAIT, MSG_TRUNC, SOL_UDP_, UDP_GRO_, UDP_SEGMENT_,
                               cmsghdr, getsockopt, htonl, htons, in6_addr, inet_ntop, inet_pton,
                               iovec, mmsghdr, msghdr, ntohl, ntohs, recvmmsg, sendmmsg, sendmsg,
                               setsockopt, sockaddr, sockaddr_in, sockaddr_in6, sockaddr_storage,
                               socklen_t, udp_segment_control)
from fastpath.hy2.wire.salamander cimport Salamander, next_salt

cdef enum:
    RX_SLOTS = 64                 # datagrams (or GRO runs) per recvmmsg
    DELIVER_MAX = 64              # datagrams per on_batch call
    RX_SLOTS_GRO = 32             # fewer but 64 KiB slots when runs arrive coalesced
    RX_SLOT = 4096                # as the plain endpoint: larger datagrams are dropped
    RX_SLOT_GRO = 65536
    RX_CTRL_WORDS = 8             # 64 bytes of control space per slot (UDP_GRO needs 24)
    TX_MSGS = 128                 # messages per sendmmsg
    TX_IOV = 2048                 # datagrams per sendmmsg
    TX_CTRL_WORDS = 4             # 32 bytes per message (UDP_SEGMENT needs 24)
    SALT = 8

# Counters tests read to see which path ran.
cdef class BatchStats:
    cdef public Py_ssize_t recv_calls, datagrams_in, gro_runs, truncated, short_obfs
    cdef public Py_ssize_t send_calls, datagrams_out, gso_messages, fallback_sends


def kernel_features(sock):
    """(GSO, GRO) this kernel offers on ``sock``: probed, changing nothing but GRO's state
    (left off)."""
    cdef int fd = sock.fileno()
    cdef int val = 0
    cdef socklen_t n = sizeof(val)
    gso = getsockopt(fd, SOL_UDP_, UDP_SEGMENT_, &val, &n) == 0
    val = 1
    gro = setsockopt(fd, SOL_UDP_, UDP_GRO_, &val, sizeof(val)) == 0
    if gro:
        val = 0
        setsockopt(fd, SOL_UDP_, UDP_GRO_, &val, sizeof(val))
    return gso, gro


cdef class BatchEndpoint:
    """A non-blocking UDP socket read with ``recvmmsg`` on each readiness event and written
    with ``sendmmsg``; ``obfs`` a ``Salamander`` or None."""

    cdef public object sock
    cdef public object on_batch
    cdef public object obfs
    cdef public bint gso
    cdef public bint gro
    cdef public Py_ssize_t dropped
    cdef public BatchStats stats
    cdef Salamander _sal
    cdef object _loop
    cdef int _fd
    cdef int _family
    # receive side
    cdef unsigned int _rx_slots
    cdef size_t _rx_slot
    cdef unsigned char *_rx_buf
    cdef mmsghdr _rx_msgs[RX_SLOTS]
    cdef iovec _rx_iov[RX_SLOTS]
    cdef sockaddr_storage _rx_addr[RX_SLOTS]
    cdef size_t _rx_ctrl[RX_SLOTS * RX_CTRL_WORDS]
    cdef sockaddr_storage _rx_last_sa
    cdef socklen_t _rx_last_len
    cdef object _rx_last_addr
    # send side
    cdef mmsghdr _tx_msgs[TX_MSGS]
    cdef iovec _tx_iov[TX_IOV]
    cdef sockaddr_storage _tx_addr[TX_MSGS]
    cdef size_t _tx_ctrl[TX_MSGS * TX_CTRL_WORDS]
    cdef int _tx_segs[TX_MSGS]
    cdef unsigned char *_tx_buf
    cdef size_t _tx_cap
    cdef object _tx_last_addr
    cdef sockaddr_storage _tx_last_sa
    cdef socklen_t _tx_last_len

    def __cinit__(self):
        self._rx_buf = NULL
        self._tx_buf = NULL
        self._tx_cap = 0

    def __init__(self, sock, on_batch, obfs=None, gso=None, gro=None):
        if obfs is not None and not isinstance(obfs, Salamander):
            raise TypeError("BatchEndpoint obfuscates with a Salamander only")
        self.sock = sock
        self.on_batch = on_batch
        self.obfs = obfs
        self._sal = obfs
        self._fd = sock.fileno()
        self._family = AF_INET6 if sock.family == socket.AF_INET6 else AF_INET
        self._loop = None
        self.dropped = 0
        self.stats = BatchStats()
        have_gso, have_gro = kernel_features(sock)
        self.gso = have_gso if gso is None else (bool(gso) and have_gso)
        self.gro = have_gro if gro is None else (bool(gro) and have_gro)
        cdef int one = 1
        if self.gro and setsockopt(self._fd, SOL_UDP_, UDP_GRO_, &one, sizeof(one)) != 0:
            self.gro = False
        self._rx_slots = RX_SLOTS_GRO if self.gro else RX_SLOTS
        self._rx_slot = RX_SLOT_GRO if self.gro else RX_SLOT
        self._rx_buf = <unsigned char *>malloc(self._rx_slots * self._rx_slot)
        if self._rx_buf == NULL:
            raise MemoryError()
        cdef unsigned int i
        for i in range(self._rx_slots):
            self._rx_iov[i].iov_base = self._rx_buf + i * self._rx_slot
            self._rx_iov[i].iov_len = self._rx_slot
            self._rx_msgs[i].msg_hdr.msg_name = &self._rx_addr[i]
            self._rx_msgs[i].msg_hdr.msg_iov = &self._rx_iov[i]
            self._rx_msgs[i].msg_hdr.msg_iovlen = 1
            self._rx_msgs[i].msg_hdr.msg_control = &self._rx_ctrl[i * RX_CTRL_WORDS]
        self._rx_last_len = 0
        self._rx_last_addr = None
        self._tx_last_addr = None

    def __dealloc__(self):
        free(self._rx_buf)
        free(self._tx_buf)

    # -- the UdpEndpoint interface ----------------------------------------------------------
    def start(self, loop):
        self._loop = loop
        loop.add_reader(self._fd, self._readable)

    def close(self):
        if self._loop is not None:
            try:
                self._loop.remove_reader(self._fd)
            except (ValueError, OSError):
                pass
            self._loop = None
        self.sock.close()

    @property
    def local_address(self):
        return self.sock.getsockname()

    # -- receive ----------------------------------------------------------------------------
    cdef object _addr_object(self, sockaddr_storage *sa, socklen_t n):
        """The Python address tuple for ``sa`` (as ``socket.recvfrom`` gives it), reused while
        datagrams keep coming from the same peer."""
        cdef char text[64]
        cdef sockaddr_in6 *s6
        if n == self._rx_last_len and self._rx_last_addr is not None \
                and memcmp(sa, &self._rx_last_sa, n) == 0:
            return self._rx_last_addr
        if sa.ss_family == AF_INET6:
            s6 = <sockaddr_in6 *>sa
            if inet_ntop(AF_INET6, &s6.sin6_addr, text, sizeof(text)) == NULL:
                return None
            addr = (text.decode("ascii"), ntohs(s6.sin6_port), ntohl(s6.sin6_flowinfo),
                    s6.sin6_scope_id)
        elif sa.ss_family == AF_INET:
            if inet_ntop(AF_INET, &(<sockaddr_in *>sa).sin_addr, text, sizeof(text)) == NULL:
                return None
            addr = (text.decode("ascii"), ntohs((<sockaddr_in *>sa).sin_port))
        else:
            return None
        if n <= sizeof(sockaddr_storage):
            memcpy(&self._rx_last_sa, sa, n)
            self._rx_last_len = n
            self._rx_last_addr = addr
        return addr

    cdef int _gro_segment(self, msghdr *m) noexcept:
        cdef cmsghdr *c = CMSG_FIRSTHDR(m)
        cdef int seg = 0
        while c != NULL:
            if c.cmsg_level == SOL_UDP_ and c.cmsg_type == UDP_GRO_:
                memcpy(&seg, CMSG_DATA(c), sizeof(int))
                return seg
            c = CMSG_NXTHDR(m, c)
        return 0

    def _readable(self):
        cdef int n = -1, i, tries = 0
        cdef unsigned int k
        cdef size_t length, seg, off, plen
        cdef unsigned char *base
        cdef Salamander sal = self._sal
        cdef BatchStats st = self.stats
        for k in range(self._rx_slots):
            self._rx_msgs[k].msg_hdr.msg_namelen = sizeof(sockaddr_storage)
            self._rx_msgs[k].msg_hdr.msg_controllen = RX_CTRL_WORDS * sizeof(size_t)
            self._rx_msgs[k].msg_hdr.msg_flags = 0
        while True:
            n = recvmmsg(self._fd, self._rx_msgs, self._rx_slots, MSG_DONTWAIT, NULL)
            if n >= 0:
                break
            if errno == EINTR:
                continue
            if errno == EAGAIN:
                return
            # ICMP errors surface here (ECONNREFUSED from an earlier send): keep reading.
            tries += 1
            if tries > 4:
                return
        st.recv_calls += 1
        batch = []
        for i in range(n):
            if self._rx_msgs[i].msg_hdr.msg_flags & MSG_TRUNC:
                st.truncated += 1
                continue
            length = self._rx_msgs[i].msg_len
            seg = 0
            if self.gro:
                seg = <size_t>self._gro_segment(&self._rx_msgs[i].msg_hdr)
            if seg == 0 or seg >= length:
                seg = length
            else:
                st.gro_runs += 1
            addr = self._addr_object(&self._rx_addr[i], self._rx_msgs[i].msg_hdr.msg_namelen)
            if addr is None:
                continue
            base = self._rx_buf + i * self._rx_slot
            off = 0
            while off < length:          # (an empty datagram yields nothing)
                plen = length - off
                if plen > seg:
                    plen = seg
                if sal is not None:
                    if plen <= SALT:
                        st.short_obfs += 1
                        off += plen
                        continue
                    data = PyBytes_FromStringAndSize(NULL, plen - SALT)
                    sal.deobfuscate_into(base + off, plen,
                                         <unsigned char *>PyBytes_AS_STRING(data))
                else:
                    data = PyBytes_FromStringAndSize(<char *>base + off, plen)
                batch.append((data, addr))
                off += plen
                if len(batch) == DELIVER_MAX:
                    # Hand over at most DELIVER_MAX at a time, as the plain endpoint does: the
                    # QUIC layer answers (ACKs) after each hand-over, and a GRO read of up to
                    # 2 MiB delivered whole would hold those answers back for tens of ms.
                    st.datagrams_in += DELIVER_MAX
                    self.on_batch(batch)
                    if self._loop is None:      # closed by the callback
                        return
                    batch = []
        st.datagrams_in += len(batch)
        if batch:
            self.on_batch(batch)

    # -- send -------------------------------------------------------------------------------
    cdef bint _resolve(self, object addr) except -1:
        """Set ``_tx_last_sa`` to ``addr``'s socket address; False if it does not convert
        (then the datagram goes through Python's ``sendto``)."""
        cdef sockaddr_in *s4
        cdef sockaddr_in6 *s6
        cdef bytes host
        if addr is self._tx_last_addr:
            return True
        if self._tx_last_addr is not None and addr == self._tx_last_addr:
            self._tx_last_addr = addr
            return True
        try:
            host = addr[0].encode("ascii")
            port = int(addr[1])
        except Exception:
            return False
        memset(&self._tx_last_sa, 0, sizeof(sockaddr_storage))
        if self._family == AF_INET:
            s4 = <sockaddr_in *>&self._tx_last_sa
            s4.sin_family = AF_INET
            s4.sin_port = htons(<uint16_t>port)
            if inet_pton(AF_INET, host, &s4.sin_addr) != 1:
                return False
            self._tx_last_len = sizeof(sockaddr_in)
        else:
            s6 = <sockaddr_in6 *>&self._tx_last_sa
            s6.sin6_family = AF_INET6
            s6.sin6_port = htons(<uint16_t>port)
            if inet_pton(AF_INET6, host, &s6.sin6_addr) != 1:
                # An IPv4 peer on a dual-stack socket: ::ffff:a.b.c.d.
                if inet_pton(AF_INET, host, (<unsigned char *>&s6.sin6_addr) + 12) != 1:
                    return False
                memset(&s6.sin6_addr, 0, 10)
                memset((<unsigned char *>&s6.sin6_addr) + 10, 0xff, 2)
            if len(addr) >= 4:
                s6.sin6_flowinfo = htonl(<uint32_t>int(addr[2]))
                s6.sin6_scope_id = <uint32_t>int(addr[3])
            self._tx_last_len = sizeof(sockaddr_in6)
        self._tx_last_addr = addr
        return True

    def send(self, list datagrams):
        """Send ``[(data, addr), ...]`` as aioquic returns them."""
        cdef Py_ssize_t n = PyList_GET_SIZE(datagrams), i = 0, j, total_bytes = 0
        cdef Py_ssize_t size, seg, run_bytes
        cdef int nmsg = 0, niov = 0, first_iov
        cdef size_t tx_off = 0
        cdef unsigned char salt[SALT]
        cdef unsigned char *dst
        cdef Salamander sal = self._sal
        cdef int extra = SALT if sal is not None else 0
        cdef msghdr *m
        cdef BatchStats st = self.stats
        if n == 0:
            return
        if sal is not None:
            for i in range(n):
                total_bytes += PyBytes_GET_SIZE(<bytes>(<tuple>PyList_GET_ITEM(datagrams, i))[0]) + SALT
            if <size_t>total_bytes > self._tx_cap:
                dst = <unsigned char *>realloc(self._tx_buf, total_bytes)
                if dst == NULL:
                    raise MemoryError()
                self._tx_buf = dst
                self._tx_cap = total_bytes
        i = 0
        while i < n:
            item = <tuple>PyList_GET_ITEM(datagrams, i)
            data = <bytes>item[0]
            addr = item[1]
            if not self._resolve(addr):
                self._python_send(data, addr)
                i += 1
                continue
            size = PyBytes_GET_SIZE(data) + extra
            # A run: same address, same size, at most one shorter datagram at its end.
            j = i + 1
            run_bytes = size
            if self.gso:
                while j < n and j - i < GSO_MAX_SEGMENTS:
                    nxt = <tuple>PyList_GET_ITEM(datagrams, j)
                    seg = PyBytes_GET_SIZE(<bytes>nxt[0]) + extra
                    if seg > size or run_bytes + seg > GSO_MAX_BYTES:
                        break
                    if nxt[1] is not addr and nxt[1] != addr:
                        break
                    run_bytes += seg
                    j += 1
                    if seg < size:
                        break
            if nmsg == TX_MSGS or niov + (j - i) > TX_IOV:
                self._flush(nmsg)
                nmsg = 0
                niov = 0
            first_iov = niov
            while i < j:
                d = <bytes>(<tuple>PyList_GET_ITEM(datagrams, i))[0]
                if sal is not None:
                    dst = self._tx_buf + tx_off
                    next_salt(salt)
                    sal.obfuscate_into(<const unsigned char *>PyBytes_AS_STRING(d),
                                       <size_t>PyBytes_GET_SIZE(d), salt, dst)
                    self._tx_iov[niov].iov_base = dst
                    self._tx_iov[niov].iov_len = PyBytes_GET_SIZE(d) + SALT
                    tx_off += PyBytes_GET_SIZE(d) + SALT
                else:
                    self._tx_iov[niov].iov_base = PyBytes_AS_STRING(d)
                    self._tx_iov[niov].iov_len = PyBytes_GET_SIZE(d)
                niov += 1
                i += 1
            memcpy(&self._tx_addr[nmsg], &self._tx_last_sa, self._tx_last_len)
            m = &self._tx_msgs[nmsg].msg_hdr
            m.msg_name = &self._tx_addr[nmsg]
            m.msg_namelen = self._tx_last_len
            m.msg_iov = &self._tx_iov[first_iov]
            m.msg_iovlen = niov - first_iov
            m.msg_flags = 0
            self._tx_segs[nmsg] = niov - first_iov
            if niov - first_iov > 1:
                udp_segment_control(m, &self._tx_ctrl[nmsg * TX_CTRL_WORDS], <uint16_t>size)
                st.gso_messages += 1
            else:
                m.msg_control = NULL
                m.msg_controllen = 0
            nmsg += 1
        if nmsg:
            self._flush(nmsg)
        st.datagrams_out += n

    cdef int _flush(self, int nmsg) except -1:
        cdef int sent = 0, r, err, k
        cdef msghdr one
        cdef BatchStats st = self.stats
        while sent < nmsg:
            r = sendmmsg(self._fd, &self._tx_msgs[sent], nmsg - sent, 0)
            st.send_calls += 1
            if r > 0:
                sent += r
                continue
            err = errno
            if err == EINTR:
                continue
            if err == EAGAIN or err == ENOBUFS:
                for k in range(sent, nmsg):       # a full socket buffer: QUIC retransmits
                    self.dropped += self._tx_segs[k]
                return 0
            if self._tx_segs[sent] > 1 and err in (EINVAL, EIO, EOPNOTSUPP, ENOPROTOOPT):
                # The device or path refuses segmentation offload: plain sends from now on.
                self.gso = False
                one = self._tx_msgs[sent].msg_hdr
                one.msg_control = NULL
                one.msg_controllen = 0
                one.msg_iovlen = 1
                for k in range(self._tx_segs[sent]):
                    one.msg_iov = &self._tx_msgs[sent].msg_hdr.msg_iov[k]
                    st.fallback_sends += 1
                    if sendmsg(self._fd, &one, 0) < 0:
                        self.dropped += 1
            else:
                self.dropped += self._tx_segs[sent]   # e.g. ECONNREFUSED from an ICMP error
            sent += 1
        return 0

    cdef _python_send(self, bytes data, addr):
        try:
            self.sock.sendto(self._sal.obfuscate(data) if self._sal is not None else data, addr)
        except OSError:
            self.dropped += 1
