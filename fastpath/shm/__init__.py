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

KIND_FREE = int(_ct.SlotKind.KIND_FREE)
KIND_USER = int(_ct.SlotKind.KIND_USER)
KIND_CONNECTION = int(_ct.SlotKind.KIND_CONNECTION)
KIND_TCP_STREAM = int(_ct.SlotKind.KIND_TCP_STREAM)
KIND_UDP_SESSION = int(_ct.SlotKind.KIND_UDP_SESSION)
KIND_MEDIA_STREAM = int(_ct.SlotKind.KIND_MEDIA_STREAM)
KIND_MEDIA_CLIENT = int(_ct.SlotKind.KIND_MEDIA_CLIENT)

STATE_INIT = int(_ct.SlotState.STATE_INIT)
STATE_HOOK = int(_ct.SlotState.STATE_HOOK)
STATE_CONNECT = int(_ct.SlotState.STATE_CONNECT)
STATE_ESTAB = int(_ct.SlotState.STATE_ESTAB)
STATE_CLOSED = int(_ct.SlotState.STATE_CLOSED)
