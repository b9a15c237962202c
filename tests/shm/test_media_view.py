"""The compiled media view against the Python folding it replaces (``live.gather`` over
``scan_slots``), on random slot sets in a real counter segment.

Ids, stream kinds and viewer texts with quotes, control characters, non-ASCII, and keys cut
mid-character at the slot's 63 bytes (two different cut tails can decode to the same text and
must then be one id); viewers seen by several workers on several shards; slots freed and
reused; states and timestamps written raw, including unknown states and zero times.
"""
from __future__ import annotations

import json
import mmap
import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastpath.control.stream_proxy.live import clients_json, read_live
from fastpath.control.stream_proxy.views import client_view
from tests.oracles.live import read_live_python
from fastpath import shm

SETTINGS = settings(max_examples=int(os.environ.get("MV_EXAMPLES", "80")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SLOTS = 512
SEG_HDR = SHARD_HDR = 64
SLOT = 384

hostile = st.text(alphabet=st.sampled_from(['"', "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "a",
                                            "é", "☃", "😀", "\u2028", "<"]), min_size=1, max_size=8)
# Long multi-byte ids are cut by the slot; the "€"/"✓" pair share a first byte, so their cut
# tails differ in bytes yet decode alike.
long_ids = st.builds(lambda pad, tail: "x" * pad + tail, st.integers(55, 62),
                     st.sampled_from(["€", "✓", "😀", "é", "€€", "✓€"]))
ids = st.one_of(st.from_regex(r"[a-z][a-z0-9]{0,4}", fullmatch=True), hostile,
                st.text(min_size=1, max_size=10), st.text(alphabet="é☃😀", min_size=20, max_size=40),
                long_ids)
states = st.sampled_from([shm.STATE_ESTAB, shm.STATE_CONNECT, shm.STATE_CLOSED, 0, 1, 9])
counts = st.integers(0, 2**40)
times = st.one_of(st.just(0), st.integers(1, 2**62))

# Ids are indexes into a small drawn pool, so one stream has relays on both shards and one
# viewer has slots on several workers (and under several streams).
stream_slot = st.fixed_dictionaries({
    "id": st.integers(0, 11), "kind": st.one_of(st.sampled_from(["hls", "direct"]), hostile), "url": st.text(max_size=140),
    "state": states, "shard": st.integers(0, 1), "tx": counts, "rx": counts, "txp": counts, "rxp": counts,
    "extra": st.lists(counts, min_size=4, max_size=4), "created": times, "last": times})
client_slot = st.fixed_dictionaries({
    "id": st.integers(0, 23), "owner": st.integers(0, 30), "text": st.text(max_size=140), "state": states,
    "shard": st.integers(0, 1), "tx": counts, "txp": counts, "created": times, "last": times,
    "free": st.booleans()})


def poke(path: str, shard: int, slot: int, state: int, created: int, last: int) -> None:
    """Write a slot's state and times directly (the writer API sets them from the clock)."""
    base = SEG_HDR + shard * (SHARD_HDR + SLOTS * SLOT) + SHARD_HDR + slot * SLOT
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0) as mm:
        struct.pack_into("<I", mm, base + 12, state)
        struct.pack_into("<QQ", mm, base + 48, created, last)


@pytest.fixture
def segment(tmp_path):
    path = str(tmp_path / "seg")
    table = shm.CounterTable.create(path, 2, SLOTS, 7)
    yield path, table
    table.close()


def fill(path, table, streams, clients, pool) -> list[str]:
    writers = [table.writer(0), table.writer(1)]
    owners = []
    opened = []
    for s in streams:
        w = writers[s["shard"]]
        slot = w.open(shm.KIND_MEDIA_STREAM, pool[s["id"] % len(pool)], text_a=s["kind"], text_b=s["url"])
        w.add_counts(slot, s["tx"], s["rx"], s["txp"], s["rxp"])
        for i, v in enumerate(s["extra"]):
            w.set_extra(slot, i, v)
        poke(path, s["shard"], slot, s["state"], s["created"], s["last"])
        owners.append((s["shard"], slot, pool[s["id"] % len(pool)]))
    for c in clients:
        w = writers[c["shard"]]
        shard, owner_slot, owner = owners[c["owner"] % len(owners)] if owners else (0, -1, "orphan")
        slot = w.open(shm.KIND_MEDIA_CLIENT, pool[c["id"] % len(pool)], text_a=owner, text_b=c["text"],
                      conn_slot=owner_slot if shard == c["shard"] else -1)
        w.add_counts(slot, c["tx"], 0, c["txp"], 0)
        poke(path, c["shard"], slot, c["state"], c["created"], c["last"])
        opened.append((w, slot, c["free"]))
    # Free some viewers and reuse their slots under other ids, as a long-lived node does.
    for w, slot, free in opened:
        if free:
            w.close(slot)
    for i, (w, slot, free) in enumerate(opened):
        if free and i % 2:
            again = w.open(shm.KIND_MEDIA_CLIENT, f"re{i}\u00e9", text_a=owners[0][2] if owners else "",
                           text_b="10.0.0.1\t\tagent")
            w.add_counts(again, i, 0, 1, 0)
    return [o[2] for o in owners]


def same(table, clients_of):
    fast = read_live(table, clients_of)
    ref = read_live_python(table, clients_of)
    assert fast.streams == ref.streams
    assert list(fast.clients) == list(ref.clients)  # the same viewers in the same order
    assert fast.clients == ref.clients
    assert fast.by_stream == ref.by_stream
    assert fast.connected == ref.connected
    assert {k: v for k, v in fast.client_last_ns.items() if v} == \
        {k: v for k, v in ref.client_last_ns.items() if v}
    if clients_of is True:
        # The viewers' JSON written in C is byte for byte the Python rendering.
        body, total, active = clients_json(table)
        objs = [client_view(c) for c in ref.clients.values()]
        assert body.decode() == json.dumps(objs, ensure_ascii=False)
        assert (total, active) == (len(objs), sum(o["is_connected"] for o in objs))
    return fast


@SETTINGS
@given(pool=st.lists(ids, min_size=1, max_size=24), streams=st.lists(stream_slot, max_size=25),
       clients=st.lists(client_slot, max_size=60), pick=st.integers(0, 40))
def test_compiled_view_matches_python_folding(segment, pool, streams, clients, pick):
    path, table = segment
    names = fill(path, table, streams, clients, pool)
    full = same(table, True)
    same(table, False)
    one = names[pick % len(names)] if names and pick < 35 else "no such stream"
    same(table, one)
    # Every viewer shown connected is counted by its stream.
    assert sum(full.connected.values()) >= sum(c.connected for c in full.clients.values())


def test_cut_tails_that_decode_alike_are_one_id(segment):
    """"x"*62 + "€" and "x"*62 + "✓" are cut to different bytes that both read as U+FFFD."""
    _, table = segment
    w0, w1 = table.writer(0), table.writer(1)
    a = w0.open(shm.KIND_MEDIA_STREAM, "x" * 62 + "€", text_a="hls", text_b="u1", state=shm.STATE_ESTAB)
    b = w1.open(shm.KIND_MEDIA_STREAM, "x" * 62 + "✓", text_a="hls", text_b="u2", state=shm.STATE_ESTAB)
    w0.add_counts(a, 5, 7, 1, 0)
    w1.add_counts(b, 11, 13, 2, 0)
    view = same(table, True)
    (live,) = view.streams.values()
    assert live.stream_id == "x" * 62 + "\ufffd"
    assert (live.workers, live.bytes_out, live.bytes_in, live.segments) == (2, 16, 20, 3)


def test_viewer_on_two_workers_is_one_client(segment):
    _, table = segment
    w0, w1 = table.writer(0), table.writer(1)
    s0 = w0.open(shm.KIND_MEDIA_STREAM, "s", text_a="hls", text_b="u", state=shm.STATE_ESTAB)
    s1 = w1.open(shm.KIND_MEDIA_STREAM, "s", text_a="hls", text_b="u", state=shm.STATE_ESTAB)
    c0 = w0.open(shm.KIND_MEDIA_CLIENT, "v", text_a="s", text_b="1.2.3.4\tann\tVLC \"3\"",
                 conn_slot=s0, state=shm.STATE_CLOSED)
    c1 = w1.open(shm.KIND_MEDIA_CLIENT, "v", text_a="s", text_b="1.2.3.4\tann\tVLC \"3\"",
                 conn_slot=s1, state=shm.STATE_ESTAB)
    w0.add_counts(c0, 100, 0, 1, 0)
    w1.add_counts(c1, 50, 0, 2, 0)
    view = same(table, True)
    (c,) = view.clients.values()
    assert (c.workers, c.bytes_out, c.segments, c.connected, c.username, c.user_agent) == \
        (2, 150, 3, True, "ann", 'VLC "3"')
    assert view.connected == {"s": 1}
    assert view.streams["s"].bytes_out == 150
