# cython: language_level=3
"""The relay pump: bytes between one QUIC stream and one TCP socket, counted in shared memory.

It is the asyncio protocol of the TCP socket and the sink of the QUIC stream's data.  Each
chunk is counted on the stream's slot (and, in the same C call, on its connection's and user's
slots) with ``ShardWriter.add``: no Python call per chunk for counting.

Back-pressure both ways: when the QUIC stream holds more than ``high_water`` unacknowledged
bytes the TCP socket stops being read until it drains below ``low_water``; when the TCP socket's
write buffer is full the stream's flow-control credit is held, so the peer stops sending.

The read-ahead bound (issue 20, "billing close to delivery"): ``high_water`` is the smaller of
4 MiB and the peer's flow-control window for the stream (``Hy2QuicConnection.send_window``), so
the bytes read from the TCP side, which are what the user is billed for, are never more than
that window plus one socket read (asyncio reads at most 256 KiB at a time) ahead of the bytes the
peer acknowledged.  Reading further would only fill our buffer: the peer's credit would not let
those bytes go before it acknowledged the ones before them.

Bytes from the TCP side go straight into the stream's compiled send buffer
(``fastpath.hy2.quic.stream_send``) when the stream has one, without aioquic's Python
``send_stream_data``; otherwise (``FASTPATH_QUIC_SENDPATH=aioquic``) through it.

Bytes from the QUIC side are written to the TCP socket once per received batch, not once per
STREAM frame: ``from_quic`` keeps them and tells the owner (``pump_pending``, on the first
chunk after a flush), and the owner calls ``flush`` when it has handled the batch's events.
One write (one syscall) per batch instead of one per packet was 45 % of ``fastpath client``'s
time during a download (bench/RESULTS.md, issue 12).  A FIN, an abort or the TCP side's end
flushes (or drops) what is kept first, so the order and the bytes are the same as before.

When either side ends the pump ends both, as the reference does (no half-close).

``head`` (set before the TCP side connects) goes to the QUIC stream in ``connection_made``,
before the first byte the TCP side sends: the server's TCP response must precede a target's
banner or the echo of the client's early data, which the event loop may deliver before the
dialing coroutine resumes.

A user with a traffic limit has a cap in its user slot (``ShardWriter.budget_left``): a chunk
that would cross it is cut to what is left, counted and forwarded, and the owner is told
(``budget_spent``), which closes the user's connections.  So the limit holds to the byte in
this worker, not one supervisor tick late.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize

from fastpath.hy2.quic.stream_send cimport StreamSendBuffer
from fastpath.shm.counter_table cimport ShardWriter, fp_now_ns

DEF_HIGH_WATER = 4 * 1024 * 1024
DEF_LOW_WATER = 1024 * 1024
TCP_WRITE_HIGH_WATER = 1024 * 1024


cdef class RelayPump:
    def __init__(self, owner, quic, long long stream_id, ShardWriter writer=None, int slot=-1,
                 bint quic_is_tx=True):
        self.owner = owner
        self.quic = quic
        self.stream_id = stream_id
        self.writer = writer
        self.slot = slot if writer is not None else -1
        self.quic_is_tx = quic_is_tx
        self.pending = []
        self.unwritten = []
        window = quic.send_window(stream_id) if hasattr(quic, "send_window") else 0
        self.high_water = min(DEF_HIGH_WATER, window) if window > 0 else DEF_HIGH_WATER
        self.low_water = min(DEF_LOW_WATER, self.high_water // 4)

    # -- counting ---------------------------------------------------------------------------
    cdef void _count(self, Py_ssize_t from_quic, Py_ssize_t from_tcp) noexcept:
        if self.slot < 0:
            return
        if self.quic_is_tx:
            self.writer.add(<unsigned int>self.slot, <unsigned long long>from_quic,
                            <unsigned long long>from_tcp, fp_now_ns())
        else:
            self.writer.add(<unsigned int>self.slot, <unsigned long long>from_tcp,
                            <unsigned long long>from_quic, fp_now_ns())

    cdef bint _spend(self, Py_ssize_t n) noexcept:
        """Whether ``n`` more bytes cross the user's cap (then only ``_left`` may go)."""
        if self.slot < 0:
            return False
        self._left = <Py_ssize_t>min(self.writer.budget_left(<unsigned int>self.slot),
                                     <unsigned long long>n)
        return self._left < n

    # -- QUIC -> TCP ------------------------------------------------------------------------
    cpdef from_quic(self, bytes data, bint end):
        """Payload the peer sent on the stream (``end``: it finished)."""
        cdef Py_ssize_t n = len(data)
        if self.finished:
            return
        if n and self._spend(n):
            data = data[:self._left]
            n = self._left
            end = True
            self.owner.budget_spent(self)
        if self.transport is None:
            if n:
                self.pending.append(data)
            self.pending_end = self.pending_end or end
            return
        if n:
            self.from_quic_bytes += n
            self._count(n, 0)
            self.unwritten.append(data)
        if end:
            self._finish("peer finished")
        elif n and not self.flush_asked:
            self.flush_asked = True
            self.owner.pump_pending(self)

    cdef bint take(self, const unsigned char *data, Py_ssize_t n) except -1:
        """``from_quic(data, False)`` called from the compiled receive path as the STREAM
        frame is read (``fastpath.hy2.quic.quic_receive``), without aioquic's event and the glue's
        event loop; False (nothing done) where ``from_quic`` would do more than keep the bytes
        for the next flush -- no TCP side yet, finished, or the user's cap crossed -- and the
        frame then becomes aioquic's event as before."""
        if self.transport is None or self.finished or n <= 0 or self._spend(n):
            return False
        self.from_quic_bytes += n
        self._count(n, 0)
        self.unwritten.append(PyBytes_FromStringAndSize(<const char *>data, n))
        if not self.flush_asked:
            self.flush_asked = True
            self.owner.pump_pending(self)
        return True

    cpdef flush(self):
        """Write what ``from_quic`` kept to the TCP socket, in one write."""
        self.flush_asked = False
        cdef list out = self.unwritten
        if not out:
            return
        self.unwritten = []
        if self.transport is None or self.finished:
            return
        self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    # -- TCP side: asyncio.Protocol -----------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        transport.set_write_buffer_limits(high=TCP_WRITE_HIGH_WATER)
        if self.finished:
            transport.abort()
            return
        head, self.head = self.head, None
        if head:
            try:
                self.quic.send_stream_data(self.stream_id, head)
            except RuntimeError:        # the peer stopped the stream meanwhile
                self.stop_sending()
            self.owner.want_transmit()
        if self.send_stopped:
            self.reading_paused = True
            transport.pause_reading()
        pending, self.pending = self.pending, []
        for data in pending:
            self.from_quic_bytes += len(data)
            self._count(len(data), 0)
            transport.write(data)
        if self.pending_end:
            self._finish("peer finished")

    def data_received(self, bytes data):
        cdef Py_ssize_t n = len(data)
        if self.finished or self.send_stopped:
            return
        if self._spend(n):
            self.from_tcp_bytes += self._left
            self._count(0, self._left)
            if self._left:
                try:
                    self.quic.send_stream_data(self.stream_id, data[:self._left])
                except RuntimeError:
                    pass
                self.owner.want_transmit()
            self.owner.budget_spent(self)
            return
        self.from_tcp_bytes += n
        self._count(0, n)
        cdef StreamSendBuffer sender = self._stream_sender()
        cdef Py_ssize_t unsent
        quic = self.quic
        try:
            if sender is not None:
                sender._write(<const unsigned char *>PyBytes_AS_STRING(data), n, False)
                unsent = sender.unacked()
            else:
                quic.send_stream_data(self.stream_id, data)
                unsent = -1
        except RuntimeError:            # the peer stopped the stream meanwhile
            self.stop_sending()
            return
        self.owner.want_transmit()
        if not self.reading_paused:
            if unsent < 0:
                unsent = quic.unsent_bytes(self.stream_id)
            if unsent >= self.high_water:
                self.reading_paused = True
                self.transport.pause_reading()
                self.owner.pump_paused(self)

    cdef StreamSendBuffer _stream_sender(self):
        """The stream's StreamSendBuffer, looked up once (None: aioquic's sender)."""
        if self._sender is None:
            streams = getattr(self.quic, "_streams", None)
            stream = streams.get(self.stream_id) if streams is not None else None
            if stream is not None and type(stream.sender) is StreamSendBuffer:
                self._sender = <StreamSendBuffer>stream.sender
        return self._sender

    def eof_received(self):
        self._finish("tcp side finished")
        return False

    def connection_lost(self, exc):
        self._finish("tcp side closed" if exc is None else f"tcp side error: {exc}")

    def pause_writing(self):
        self.credit_held = True
        self.quic.hold_credit(self.stream_id, True)

    def resume_writing(self):
        self.credit_held = False
        self.quic.hold_credit(self.stream_id, False)
        self.owner.want_transmit()

    # -- control ----------------------------------------------------------------------------
    cpdef check_resume(self):
        """Resume reading the TCP side once the stream drained (called after ACKs arrive);
        True when the pump is no longer paused."""
        if not self.reading_paused or self.finished or self.send_stopped:
            return True
        if self.quic.unsent_bytes(self.stream_id) <= self.low_water:
            self.reading_paused = False
            self.transport.resume_reading()
            return True
        return False

    cpdef stop_sending(self):
        """The peer stopped reading the stream: stop reading the TCP side; what the peer
        still sends is delivered until its FIN ends the pump."""
        self.send_stopped = True
        if self.transport is not None and not self.finished and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()

    cpdef abort(self):
        """The stream was reset: drop the TCP side at once."""
        self.unwritten = []
        if self.transport is not None:
            self.transport.abort()
        self._finish("stream reset")

    cdef _finish(self, str reason):
        if self.finished:
            return
        self.finished = True
        if self.credit_held:
            self.quic.hold_credit(self.stream_id, False)
        if self.transport is not None:
            if self.unwritten:
                out, self.unwritten = self.unwritten, []
                if not self.transport.is_closing():
                    self.transport.write(b"".join(out))
            self.transport.close()          # flushes what was written, then closes
        self.owner.pump_finished(self, reason)
