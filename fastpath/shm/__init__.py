"""Shared-memory counters: the compiled counter table and the segment's life cycle."""
from fastpath._native import load as _load

_ct = _load("fastpath.shm.counter_table")

CounterTable = _ct.CounterTable
ShardWriter = _ct.ShardWriter
scan_users = _ct.scan_users
scan_slots = _ct.scan_slots
scan_totals = _ct.scan_totals
count_kinds = _ct.count_kinds
segment_size = _ct.segment_size
SLOT_SIZE = _ct.SLOT_SIZE
KIND_NAMES = _ct.KIND_NAMES
STATE_NAMES = _ct.STATE_NAMES

# The enums of counter_table.pxd (declared there once), as plain ints, in declaration order.
(KIND_FREE, KIND_USER, KIND_CONNECTION, KIND_TCP_STREAM, KIND_UDP_SESSION, KIND_MEDIA_STREAM,
 KIND_MEDIA_CLIENT) = (int(k) for k in _ct.SlotKind)
STATE_INIT, STATE_HOOK, STATE_CONNECT, STATE_ESTAB, STATE_CLOSED = (int(s) for s in _ct.SlotState)
