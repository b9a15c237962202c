# cython: language_level=3
"""TCP to TCP: the relay under the proxy inbounds (SOCKS5, HTTP), counted in shared memory.

A ``TcpSplice`` joins a client's socket to its target's.  Each socket's protocol is a
``SpliceSide``: what one side reads goes straight to the other side's transport and is counted
on the splice's slot with ``ShardWriter.add`` (one C call per chunk that also lands on the
connection and user slots, as the Hysteria 2 relay pump counts).  Bytes from the client are
``tx`` (toward the target), bytes from the target ``rx``, as for Hysteria 2 users.

Back-pressure: when a side's write buffer passes its high-water mark, the other side stops being
read until it drains.  A user with a traffic limit is held to its cap where the bytes are
counted (``ShardWriter.budget_left``, as the Hysteria 2 relay pump does): a chunk that would
cross it is cut to what is left, and the splice's ``on_budget`` ends the user's connections.  Either side ending ends both (no half-close, as the Hysteria 2 relay).
"""
from fastpath.shm.counter_table cimport ShardWriter, fp_now_ns

WRITE_HIGH_WATER = 1024 * 1024


cdef class TcpSplice:
    """One relayed connection: two sides, one counter slot, one end."""
    cdef public SpliceSide client
    cdef public SpliceSide target
    cdef ShardWriter writer
    cdef readonly int slot
    cdef readonly bint finished
    cdef readonly bint over_budget
    cdef readonly str reason
    cdef object on_finish
    cdef readonly unsigned long long up_bytes
    cdef readonly unsigned long long down_bytes
    # Optional stream codecs of an encrypted protocol (Shadowsocks): ``up_codec.feed(bytes)``
    # opens what the client sent, ``down_codec.seal(bytes)`` seals what goes back.  Counting is
    # of the plaintext, as for the other inbounds.
    cdef public object up_codec
    cdef public object down_codec
    # Called with the splice when the user's traffic cap is reached here (the user slot's
    # budget, ``ShardWriter.budget_left``): what fits was forwarded, the rest is not.
    cdef public object on_budget

    def __init__(self, ShardWriter writer=None, int slot=-1, on_finish=None):
        self.writer = writer
        self.slot = slot if writer is not None else -1
        self.on_finish = on_finish
        self.client = SpliceSide(self, True)
        self.target = SpliceSide(self, False)
        self.client.peer = self.target
        self.target.peer = self.client

    cdef void _count(self, bint up, Py_ssize_t n) noexcept:
        if up:
            self.up_bytes += n
        else:
            self.down_bytes += n
        if self.slot >= 0:
            if up:
                self.writer.add(<unsigned int>self.slot, <unsigned long long>n, 0, fp_now_ns())
            else:
                self.writer.add(<unsigned int>self.slot, 0, <unsigned long long>n, fp_now_ns())

    def attach_client(self, transport, bytes buffered=b""):
        """Make the splice the protocol of the accepted client socket; ``buffered``: bytes
        already read from it past the proxy handshake (they go to the target first)."""
        transport.set_protocol(self.client)
        self.client.connection_made(transport)
        # The handshake's StreamReader may have paused the socket (its buffer filled while the
        # client sent data behind its request, as a Trojan client does): reading is ours now.
        if not transport.is_reading():
            transport.resume_reading()
        if buffered:
            self.client.data_received(buffered)

    cdef bytes _within_budget(self, bytes data):
        """``data`` cut to what the user may still move (all of it without a cap)."""
        cdef unsigned long long left
        if self.slot < 0:
            return data
        left = self.writer.budget_left(<unsigned int>self.slot)
        if left >= <unsigned long long>len(data):
            return data
        self.over_budget = True
        return data[:left]

    cdef void _budget_reached(self):
        if self.on_budget is not None:
            self.on_budget(self)
        else:
            self.abort("traffic limit reached")

    def send_to_target(self, bytes data):
        """Write bytes of our own making to the target (an HTTP request rewritten to origin
        form), counted as the client's."""
        data = self._within_budget(data)
        self._count(True, len(data))
        self.target.transport.write(data)
        if self.over_budget:
            self._budget_reached()

    cpdef finish(self, str reason):
        if self.finished:
            return
        self.finished = True
        self.reason = reason
        for side in (self.client, self.target):
            t = (<SpliceSide>side).transport
            if t is not None and not t.is_closing():
                t.close()
        if self.on_finish is not None:
            self.on_finish(self, reason)

    cpdef abort(self, str reason):
        """End at once, dropping what is still buffered (a kick)."""
        for side in (self.client, self.target):
            t = (<SpliceSide>side).transport
            if t is not None:
                t.abort()
        self.finish(reason)


cdef class SpliceSide:
    """The asyncio protocol of one of the two sockets."""
    cdef TcpSplice splice
    cdef bint is_client
    cdef public object transport
    cdef SpliceSide peer
    cdef list pending           # read before the other side was connected

    def __init__(self, TcpSplice splice, bint is_client):
        self.splice = splice
        self.is_client = is_client
        self.pending = []

    def connection_made(self, transport):
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        if self.splice.finished:
            transport.abort()
            return
        # What the other side read while this one was connecting, through the same path
        # (codec and counting) as what it reads from now on.
        pending, self.peer.pending = self.peer.pending, []
        for data in pending:
            self.peer.data_received(data)

    def data_received(self, bytes data):
        cdef TcpSplice splice = self.splice
        if splice.finished:
            return
        peer = self.peer.transport
        if peer is None:
            self.pending.append(data)
            return
        if self.is_client:
            if splice.up_codec is not None:
                try:
                    data = splice.up_codec.feed(data)
                except ValueError as exc:
                    splice.abort(f"client sent a bad chunk: {exc}")
                    return
                if not data:
                    return
            data = splice._within_budget(data)
            splice._count(True, len(data))
        else:
            data = splice._within_budget(data)
            splice._count(False, len(data))
            if splice.down_codec is not None and data:
                data = splice.down_codec.seal(data)
        if data:
            peer.write(data)
        if splice.over_budget:
            splice._budget_reached()

    # What an exit peer (fastpath.hy2.client.exit_peers) reads of the stream it carries, as of the
    # Hysteria 2 relay pump: the bytes toward the target and back, and whether it ended.
    @property
    def finished(self):
        return self.splice.finished

    @property
    def from_quic_bytes(self):
        return self.splice.up_bytes

    @property
    def from_tcp_bytes(self):
        return self.splice.down_bytes

    def eof_received(self):
        self.splice.finish("client finished" if self.is_client else "target finished")
        return False

    def connection_lost(self, exc):
        who = "client" if self.is_client else "target"
        self.splice.finish(f"{who} closed" if exc is None else f"{who} error: {exc}")

    def pause_writing(self):
        # This side's socket is full: stop reading the other.
        if self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self):
        if self.peer.transport is not None and not self.splice.finished:
            self.peer.transport.resume_reading()
