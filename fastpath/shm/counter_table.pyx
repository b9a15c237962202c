# cython: language_level=3
"""Shared-memory counter table: one shard per data-plane worker, one writer per shard.

Writers (``ShardWriter``) count with plain aligned 64-bit stores, no locks: each shard has a
single writer process.  Text fields (key, addresses) are published under a per-slot seqlock so
a reader never sees a torn record.  Every byte counted on a stream is counted on its
connection's and its user's slot in the same call, so a user's total is exact on its own and a
finished stream's slot is freed without a fold that readers could observe half-done.

Readers (``scan_users``, ``scan_slots``) walk every shard in C and never write a shard; "clear"
semantics are baselines kept on the reader side (the state store).
"""
import mmap as _mmap_mod
import os

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

# Slot kinds (the SlotKind enum of the .pxd): user totals are never recycled while the segment
# lives; connection = an authenticated QUIC connection or proxy inbound client; tcp stream;
# udp session; media stream (an upstream being relayed); media client (a viewer).
KIND_NAMES = {0: "free", 1: "user", 2: "connection", 3: "tcp", 4: "udp", 5: "media_stream",
              6: "media_client"}

# Names of the stream states (the SlotState enum of the .pxd), by value.
STATE_NAMES = ("init", "hook", "connect", "estab", "closed")

SLOT_SIZE = sizeof(fp_slot)
SEGMENT_MAGIC = 0x3130525443504646


def segment_size(uint32_t nshards, uint32_t slots_per_shard):
    """Bytes needed for a segment of this shape."""
    return fp_segment_size(nshards, slots_per_shard)


cdef inline void _put_text(uint8_t *len_field, char *dst, int cap, bytes value):
    cdef Py_ssize_t n = len(value)
    if n > cap:
        n = cap
    memcpy(dst, <char *>value, n)
    len_field[0] = <uint8_t>n


cdef class CounterTable:
    """A mapped counter segment.  ``create`` formats a new one; ``attach`` maps an existing one."""

    def __cinit__(self):
        self._mmap = None
        self.base = NULL

    @staticmethod
    def create(str path, uint32_t nshards, uint32_t slots_per_shard, uint64_t segment_id):
        if nshards == 0 or slots_per_shard == 0:
            raise ValueError("a counter segment needs at least one shard and one slot")
        cdef size_t size = fp_segment_size(nshards, slots_per_shard)
        tmp = f"{path}.tmp{os.getpid()}"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, size)
            mm = _mmap_mod.mmap(fd, size, _mmap_mod.MAP_SHARED, _mmap_mod.PROT_READ | _mmap_mod.PROT_WRITE)
        finally:
            os.close(fd)
        cdef CounterTable t = CounterTable.__new__(CounterTable)
        t._bind(mm, path)
        t.header.version = 1
        t.header.nshards = nshards
        t.header.slots_per_shard = slots_per_shard
        t.header.slot_size = sizeof(fp_slot)
        t.header.segment_id = segment_id
        t.header.created_ns = fp_now_ns()
        t.header.supervisor_pid = os.getpid()
        t.nshards = nshards
        t.slots_per_shard = slots_per_shard
        # The magic goes last, and the file appears under its name only when complete.
        fp_store_u64(&t.header.magic, SEGMENT_MAGIC)
        os.rename(tmp, path)
        return t

    @staticmethod
    def attach(str path, bint readonly=False):
        """Map an existing segment.  Readers pass ``readonly=True``: the kernel then enforces
        that they never write a shard."""
        fd = os.open(path, os.O_RDONLY if readonly else os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            if size < sizeof(fp_segment_header):
                raise ValueError(f"{path}: too small to be a counter segment")
            prot = _mmap_mod.PROT_READ if readonly else _mmap_mod.PROT_READ | _mmap_mod.PROT_WRITE
            mm = _mmap_mod.mmap(fd, size, _mmap_mod.MAP_SHARED, prot)
        finally:
            os.close(fd)
        cdef CounterTable t = CounterTable.__new__(CounterTable)
        t.readonly = readonly
        t._bind(mm, path)
        if t.header.magic != SEGMENT_MAGIC or t.header.version != 1:
            raise ValueError(f"{path}: not a fastpath counter segment (bad magic or version)")
        if t.header.slot_size != sizeof(fp_slot):
            raise ValueError(f"{path}: slot size {t.header.slot_size} != {sizeof(fp_slot)}")
        if fp_segment_size(t.header.nshards, t.header.slots_per_shard) != size:
            raise ValueError(f"{path}: size does not match its header")
        t.nshards = t.header.nshards
        t.slots_per_shard = t.header.slots_per_shard
        return t

    cdef _bind(self, mm, str path):
        cdef const unsigned char[::1] view = mm
        self._mmap = mm
        self.base = <char *>&view[0]
        self.header = <fp_segment_header *>self.base
        self.path = path

    @property
    def segment_id(self):
        return self.header.segment_id

    @property
    def created_ns(self):
        return self.header.created_ns

    def shard_info(self, uint32_t shard):
        """Writer pid, heartbeat, restarts, high-water mark and live slots of one shard."""
        self._check_shard(shard)
        cdef fp_shard_header *h = fp_shard_hdr(self.base, shard, self.slots_per_shard)
        return {"writer_pid": h.writer_pid, "heartbeat_ns": h.heartbeat_ns,
                "restarts": h.restarts, "high_water": h.high_water, "live_slots": h.live_slots}

    def writer(self, uint32_t shard):
        """The writer of one shard.  Only the process that owns the shard may call this."""
        self._check_shard(shard)
        if self.readonly:
            raise PermissionError("a read-only counter table has no writers")
        return ShardWriter(self, shard)

    cdef _check_shard(self, uint32_t shard):
        if self.base == NULL:
            raise ValueError("counter table is closed")
        if shard >= self.nshards:
            raise IndexError(f"shard {shard} out of range (segment has {self.nshards})")

    def close(self):
        # The mapping stays valid while writers or memoryviews still reference it.
        self.base = NULL
        self.header = NULL
        self._mmap = None


cdef class ShardWriter:
    """The single writer of one shard: allocates slots, publishes text, counts bytes."""

    def __cinit__(self, CounterTable table, uint32_t shard):
        self.table = table
        self.shard = shard
        self.hdr = fp_shard_hdr(table.base, shard, table.slots_per_shard)
        self.slots = fp_shard_slots(table.base, shard, table.slots_per_shard)
        self.nslots = table.slots_per_shard
        self.free_stack = <uint32_t *>malloc(sizeof(uint32_t) * self.nslots)
        if self.free_stack == NULL:
            raise MemoryError()
        self._user_slots = {}
        self._budgets = {}
        self._recover()

    def __dealloc__(self):
        if self.free_stack != NULL:
            free(self.free_stack)

    cdef _recover(self):
        """Adopt the shard as a previous writer left it.

        User slots are kept (their totals already include every byte counted).  Connection and
        stream slots of a previous writer describe things that died with it: they are freed,
        which loses nothing because their bytes are in their user's slot too.
        """
        cdef uint32_t i, hw = <uint32_t>self.hdr.high_water
        cdef fp_slot *s
        cdef uint64_t live = 0
        if hw > self.nslots:
            hw = self.nslots
            self.hdr.high_water = hw
        self.free_top = 0
        # Free slots are pushed so the lowest index is popped first (keeps high_water low).
        i = self.nslots
        while i > hw:
            i -= 1
            self.free_stack[self.free_top] = i
            self.free_top += 1
        i = hw
        while i > 0:
            i -= 1
            s = &self.slots[i]
            if s.seq & 1:
                # The previous writer died inside a seqlock section: close it.
                fp_seq_end(s)
            if s.kind == KIND_USER:
                key = PyBytes_FromStringAndSize(s.key, s.key_len).decode("utf-8", "replace")
                self._user_slots[key] = i
                live += 1
            else:
                if s.kind != KIND_FREE:
                    self._clear(s)
                self.free_stack[self.free_top] = i
                self.free_top += 1
        self.hdr.live_slots = live
        if self.hdr.writer_pid != 0:
            self.hdr.restarts += 1
        self.hdr.writer_pid = os.getpid()
        self.hdr.heartbeat_ns = fp_now_ns()

    cdef void _clear(self, fp_slot *s) noexcept:
        fp_seq_begin(s)
        s.kind = KIND_FREE
        s.state = 0
        s.key_len = 0
        s.text_a_len = 0
        s.text_b_len = 0
        s.user_slot = 0
        s.conn_slot = 0
        fp_seq_end(s)

    cdef int _alloc(self) except -1:
        if self.free_top == 0:
            raise MemoryError(f"counter shard {self.shard} is full ({self.nslots} slots)")
        self.free_top -= 1
        cdef uint32_t idx = self.free_stack[self.free_top]
        if idx >= self.hdr.high_water:
            self.hdr.high_water = idx + 1
        self.hdr.live_slots += 1
        return idx

    @property
    def free_slots(self):
        return self.free_top

    def heartbeat(self):
        fp_store_u64(&self.hdr.heartbeat_ns, fp_now_ns())

    def user_slot(self, str key):
        """Index of the user-total slot for ``key`` in this shard, allocated on first use."""
        idx = self._user_slots.get(key)
        if idx is not None:
            return idx
        idx = self.open(KIND_USER, key)
        self._user_slots[key] = idx
        allow = self._budgets.get(key)
        if allow is not None:
            fp_store_u64(&self.slots[idx].extra[0], <uint64_t>allow + 1)
        return idx

    def set_budgets(self, dict allow not None):
        """Caps on this shard's user slots: ``{user: bytes}``, the tx + rx a user's slot here
        may reach before the user is cut (the supervisor's limit minus what the user moved
        everywhere else, at its last scan).  Users not named have no cap.  A user slot made
        later takes its cap from here too, so a first connection is capped from its first
        byte."""
        cdef dict clean = {}
        for key, value in allow.items():
            clean[str(key)] = max(0, min(int(value), 0xFFFFFFFFFFFFFFFE))
        self._budgets = clean
        for key, idx in self._user_slots.items():
            value = clean.get(key)
            fp_store_u64(&self.slots[<uint32_t>idx].extra[0],
                         0 if value is None else <uint64_t>value + 1)

    def budget(self, uint32_t slot):
        """What ``budget_left`` says for a slot (None: no cap); for tests and views."""
        self._check(slot)
        cdef uint64_t left = self.budget_left(slot)
        return None if left == 0xFFFFFFFFFFFFFFFFULL else left

    def user_slots(self):
        """Copy of key -> slot index for every user slot of this shard."""
        return dict(self._user_slots)

    def open(self, uint32_t kind, str key, *, int user_slot=-1, int conn_slot=-1,
             uint64_t conn_id=0, uint64_t stream_id=0, str text_a="", str text_b="",
             uint32_t state=0):
        """Allocate and publish a slot; returns its index.  Counters start at zero."""
        if kind == KIND_FREE or kind > KIND_MEDIA_CLIENT:
            raise ValueError(f"bad slot kind {kind}")
        if user_slot >= <int>self.nslots or conn_slot >= <int>self.nslots:
            raise IndexError("owner slot out of range")
        cdef bytes bkey = key.encode("utf-8")
        cdef bytes ba = text_a.encode("utf-8")
        cdef bytes bb = text_b.encode("utf-8")
        cdef int idx = self._alloc()
        cdef fp_slot *s = &self.slots[idx]
        cdef uint64_t now = fp_now_ns()
        fp_seq_begin(s)
        s.kind = kind
        s.state = state
        # Counters of a recycled slot restart from zero; readers cannot mistake them for the
        # previous occupant's because the seq changed.
        fp_store_u64(&s.tx, 0)
        fp_store_u64(&s.rx, 0)
        fp_store_u64(&s.tx_packets, 0)
        fp_store_u64(&s.rx_packets, 0)
        s.created_ns = now
        fp_store_u64(&s.last_active_ns, now)
        s.conn_id = conn_id
        s.stream_id = stream_id
        s.user_slot = <uint32_t>(user_slot + 1)
        s.conn_slot = <uint32_t>(conn_slot + 1)
        s.flags = 0
        s.extra[0] = 0
        s.extra[1] = 0
        s.extra[2] = 0
        s.extra[3] = 0
        _put_text(&s.key_len, s.key, FP_KEY_MAX, bkey)
        _put_text(&s.text_a_len, s.text_a, FP_TEXT_A_MAX, ba)
        _put_text(&s.text_b_len, s.text_b, FP_TEXT_B_MAX, bb)
        fp_seq_end(s)
        return idx

    def set_state(self, uint32_t slot, uint32_t state):
        self._check(slot)
        cdef fp_slot *s = &self.slots[slot]
        fp_seq_begin(s)
        s.state = state
        fp_seq_end(s)

    def set_text(self, uint32_t slot, text_a=None, text_b=None):
        """Republish the slot's text fields (e.g. the request address once it is read)."""
        self._check(slot)
        cdef fp_slot *s = &self.slots[slot]
        cdef bytes ba = text_a.encode("utf-8") if text_a is not None else None
        cdef bytes bb = text_b.encode("utf-8") if text_b is not None else None
        fp_seq_begin(s)
        if ba is not None:
            _put_text(&s.text_a_len, s.text_a, FP_TEXT_A_MAX, ba)
        if bb is not None:
            _put_text(&s.text_b_len, s.text_b, FP_TEXT_B_MAX, bb)
        fp_seq_end(s)

    def count(self, uint32_t slot, uint64_t tx, uint64_t rx):
        """Python entry to ``add`` (Cython callers use ``add`` directly, without the GIL)."""
        self._check(slot)
        self.add(slot, tx, rx, fp_now_ns())

    def count_many(self, uint32_t slot, uint64_t n, uint64_t tx, uint64_t rx):
        """Count ``n`` updates in C: the per-update cost of the hot path, for benchmarks."""
        self._check(slot)
        cdef uint64_t i, now = fp_now_ns()
        with nogil:
            for i in range(n):
                self.add(slot, tx, rx, now)

    def count_many_locked(self, uint32_t slot, uint64_t n, uint64_t tx, uint64_t rx):
        """The baseline of ``count_many`` for benchmarks, C loop against C loop: the same
        fields of one slot updated the way a counter with several writers must be, with a
        locked atomic add (``lock xadd``) instead of the single writer's plain store."""
        self._check(slot)
        cdef uint64_t i, now = fp_now_ns()
        cdef fp_slot *s = &self.slots[slot]
        with nogil:
            for i in range(n):
                if tx:
                    fp_locked_add_u64(&s.tx, tx)
                    fp_locked_add_u64(&s.tx_packets, 1)
                if rx:
                    fp_locked_add_u64(&s.rx, rx)
                    fp_locked_add_u64(&s.rx_packets, 1)
                fp_store_u64(&s.last_active_ns, now)

    def add_counts(self, uint32_t slot, uint64_t tx, uint64_t rx, uint64_t tx_packets,
                   uint64_t rx_packets):
        """Add bytes and packet counts as given (not one packet per call) to a slot and to its
        connection slot: a media client's HLS segment (tx, 1 segment) lands on its stream too;
        a stream's upstream bytes (rx, no packets) and errors (rx_packets) on the stream alone."""
        self._check(slot)
        cdef fp_slot *s = &self.slots[slot]
        cdef uint64_t now = fp_now_ns()
        cdef uint32_t owner = s.conn_slot
        _add_counts(s, tx, rx, tx_packets, rx_packets, now)
        if owner and owner - 1 < self.nslots:
            _add_counts(&self.slots[owner - 1], tx, rx, tx_packets, rx_packets, now)

    def set_extra(self, uint32_t slot, uint32_t i, uint64_t value):
        """Publish ``extra[i]`` (0..3) of a slot: kind-specific figures (for media streams:
        URL index, failovers, last failover time, cache hits)."""
        self._check(slot)
        if i >= 4:
            raise IndexError("extra index must be 0..3")
        fp_store_u64(&self.slots[slot].extra[i], value)

    def close(self, uint32_t slot):
        """Free a connection/stream slot.  Its bytes are already in its user's total."""
        self._check(slot)
        cdef fp_slot *s = &self.slots[slot]
        if s.kind == KIND_USER:
            raise ValueError("user-total slots are never freed")
        if s.kind == KIND_FREE:
            return
        self._clear(s)
        self.free_stack[self.free_top] = slot
        self.free_top += 1
        self.hdr.live_slots -= 1

    def read(self, uint32_t slot):
        """One slot as a dict (the writer's own view; readers use ``scan_slots``)."""
        self._check(slot)
        return _slot_record(self.slots, slot, self.shard)

    cdef _check(self, uint32_t slot):
        if slot >= self.nslots:
            raise IndexError(f"slot {slot} out of range")


cdef inline void _add_counts(fp_slot *s, uint64_t tx, uint64_t rx, uint64_t tx_packets,
                             uint64_t rx_packets, uint64_t now) noexcept nogil:
    if tx:
        fp_add_u64(&s.tx, tx)
    if rx:
        fp_add_u64(&s.rx, rx)
    if tx_packets:
        fp_add_u64(&s.tx_packets, tx_packets)
    if rx_packets:
        fp_add_u64(&s.rx_packets, rx_packets)
    fp_store_u64(&s.last_active_ns, now)


cdef dict _slot_record(fp_slot *slots, uint32_t idx, uint32_t shard):
    cdef fp_slot *s = &slots[idx]
    cdef fp_slot copy
    fp_slot_copy(s, &copy)
    return {
        "shard": shard, "slot": idx, "kind": copy.kind, "state": copy.state,
        "key": PyBytes_FromStringAndSize(copy.key, copy.key_len).decode("utf-8", "replace"),
        "text_a": PyBytes_FromStringAndSize(copy.text_a, copy.text_a_len).decode("utf-8", "replace"),
        "text_b": PyBytes_FromStringAndSize(copy.text_b, copy.text_b_len).decode("utf-8", "replace"),
        "tx": copy.tx, "rx": copy.rx, "tx_packets": copy.tx_packets, "rx_packets": copy.rx_packets,
        "created_ns": copy.created_ns, "last_active_ns": copy.last_active_ns,
        "conn_id": copy.conn_id, "stream_id": copy.stream_id,
        "user_slot": <int>copy.user_slot - 1, "conn_slot": <int>copy.conn_slot - 1,
        "extra": [copy.extra[0], copy.extra[1], copy.extra[2], copy.extra[3]],
    }


cdef inline bint _read_head(fp_slot *s, uint32_t *kind, uint64_t *seq) noexcept nogil:
    seq[0] = fp_seq_stable(s)
    kind[0] = s.kind
    return kind[0] != KIND_FREE


def scan_users(CounterTable table):
    """Sum every shard by user: ``{user: [tx, rx, connections, streams, last_active_ns]}``.

    User totals come from user slots; connections and streams are counted by their owning user
    slot index, so only user slots have their key decoded (a 100k-slot scan stays in C).
    """
    if table.base == NULL:
        raise ValueError("counter table is closed")
    cdef dict out = {}
    cdef uint32_t shard, i, hw, kind, owner
    cdef fp_slot *slots
    cdef fp_slot *s
    cdef uint64_t seq1, seq2, tx, rx, last
    cdef uint32_t *conns
    cdef uint32_t *streams
    cdef uint32_t n = table.slots_per_shard
    conns = <uint32_t *>malloc(sizeof(uint32_t) * n)
    streams = <uint32_t *>malloc(sizeof(uint32_t) * n)
    if conns == NULL or streams == NULL:
        free(conns); free(streams)
        raise MemoryError()
    try:
        for shard in range(table.nshards):
            slots = fp_shard_slots(table.base, shard, n)
            hw = shard_high_water(table, shard)
            with nogil:
                memset(conns, 0, sizeof(uint32_t) * hw)
                memset(streams, 0, sizeof(uint32_t) * hw)
                for i in range(hw):
                    s = &slots[i]
                    while True:
                        seq1 = fp_seq_stable(s)
                        kind = s.kind
                        owner = s.user_slot
                        fp_read_fence()
                        seq2 = fp_load_u64(&s.seq)
                        if seq1 == seq2:
                            break
                    if owner == 0 or owner > hw:
                        continue
                    if kind == KIND_CONNECTION:
                        conns[owner - 1] += 1
                    elif kind == KIND_TCP_STREAM or kind == KIND_UDP_SESSION:
                        streams[owner - 1] += 1
            for i in range(hw):
                s = &slots[i]
                while True:
                    seq1 = fp_seq_stable(s)
                    if s.kind != KIND_USER:
                        kind = KIND_FREE
                        break
                    kind = KIND_USER
                    key = PyBytes_FromStringAndSize(s.key, s.key_len)
                    tx = fp_load_u64(&s.tx)
                    rx = fp_load_u64(&s.rx)
                    last = fp_load_u64(&s.last_active_ns)
                    fp_read_fence()
                    seq2 = fp_load_u64(&s.seq)
                    if seq1 == seq2:
                        break
                if kind != KIND_USER:
                    continue
                ukey = (<bytes>key).decode("utf-8", "replace")
                rec = out.get(ukey)
                if rec is None:
                    out[ukey] = [tx, rx, conns[i], streams[i], last]
                else:
                    rec[0] += tx
                    rec[1] += rx
                    rec[2] += conns[i]
                    rec[3] += streams[i]
                    if last > rec[4]:
                        rec[4] = last
    finally:
        free(conns)
        free(streams)
    return out


def scan_slots(CounterTable table, kinds=None):
    """Every live slot (optionally only of ``kinds``) as a list of dicts, torn-free."""
    if table.base == NULL:
        raise ValueError("counter table is closed")
    cdef uint64_t mask = 0
    if kinds is None:
        mask = ~(<uint64_t>1)
    else:
        for k in kinds:
            mask |= (<uint64_t>1) << <int>k
    cdef list out = []
    cdef uint32_t shard, i, hw, kind
    cdef uint32_t n = table.slots_per_shard
    cdef fp_slot *slots
    for shard in range(table.nshards):
        slots = fp_shard_slots(table.base, shard, n)
        hw = shard_high_water(table, shard)
        for i in range(hw):
            kind = slots[i].kind
            if kind < 64 and (mask >> kind) & 1:
                rec = _slot_record(slots, i, shard)
                if rec["kind"] != KIND_FREE and (mask >> <int>rec["kind"]) & 1:
                    out.append(rec)
    return out


def scan_totals(CounterTable table):
    """(slots in use, tx, rx) of every user slot, all in C: the cost floor of a full scan."""
    if table.base == NULL:
        raise ValueError("counter table is closed")
    cdef uint32_t shard, i, hw
    cdef uint32_t n = table.slots_per_shard
    cdef uint64_t used = 0, tx = 0, rx = 0, seq
    cdef fp_slot *slots
    cdef uint32_t kind
    with nogil:
        for shard in range(table.nshards):
            slots = fp_shard_slots(table.base, shard, n)
            hw = shard_high_water(table, shard)
            for i in range(hw):
                if _read_head(&slots[i], &kind, &seq):
                    used += 1
                    if kind == KIND_USER:
                        tx += fp_load_u64(&slots[i].tx)
                        rx += fp_load_u64(&slots[i].rx)
    return used, tx, rx


def count_kinds(CounterTable table):
    """Live slots per shard and kind: ``[[count of kind 0, 1, ...], ...]`` (one list a shard)."""
    if table.base == NULL:
        raise ValueError("counter table is closed")
    cdef uint32_t shard, i, hw, kind
    cdef uint32_t n = table.slots_per_shard
    cdef uint64_t seq
    cdef uint64_t counts[8]
    cdef fp_slot *slots
    out = []
    for shard in range(table.nshards):
        memset(counts, 0, sizeof(counts))
        slots = fp_shard_slots(table.base, shard, n)
        hw = shard_high_water(table, shard)
        with nogil:
            for i in range(hw):
                _read_head(&slots[i], &kind, &seq)
                if kind < 8:
                    counts[kind] += 1
        out.append([counts[k] for k in range(8)])
    return out
