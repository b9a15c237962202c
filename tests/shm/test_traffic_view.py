"""The compiled traffic view against the plain-Python renderings it replaces, byte for byte.

Random slot sets on a real counter segment (ids with quotes, backslashes, control characters,
non-ASCII, and keys cut mid-character at the slot's 63 bytes), carried totals and baselines;
the same view is reused after slots are recycled under other ids, as in a long-lived API
process.
"""
from __future__ import annotations

import json
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastpath.shm as shm
from fastpath.control import validation
from fastpath.control.metrics import USER_FAMILIES
from fastpath.control.native_traffic import traffic_media
from fastpath.control.traffic_format import TABLE_FORMAT, TABLE_HEADER, go_duration, rfc3339_nano, stream_table
from tests.oracles.traffic import online_json, since_baseline, stream_records, streams_json, traffic_json
from fastpath.views import traffic_view as tv

HEADER = (TABLE_FORMAT % TABLE_HEADER).encode()
SETTINGS = settings(max_examples=int(os.environ.get("TV_EXAMPLES", 60)), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# Ids: plain, JSON-hostile, non-ASCII, and long multi-byte ones the slot cuts mid-character.
hostile = st.text(alphabet=st.sampled_from(['"', "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "a",
                                            "é", "☃", "😀", "\u2028", "/", "<"]), min_size=1, max_size=8)
ids = st.one_of(st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True), hostile, st.text(min_size=1, max_size=10),
                st.text(alphabet="é☃😀", min_size=20, max_size=40))
u64 = st.integers(0, 2**63)


class Node:
    """The NodeModel's read composition (scan_users, scan_slots, carried + live) over one
    segment and in-memory carried totals."""

    def __init__(self, table, carried):
        self.table = table
        self.carried = carried

    def live_users(self):
        return shm.scan_users(self.table)

    def slots(self, kinds=None):
        return shm.scan_slots(self.table, kinds)

    def user_totals(self, live=None):
        live = self.live_users() if live is None else live
        totals = dict(self.carried)
        for uid, rec in live.items():
            ctx, crx = totals.get(uid, (0, 0))
            totals[uid] = (ctx + rec[0], crx + rec[1])
        return totals


@pytest.fixture
def seg_path():
    path = f"/dev/shm/fastpath-tv-{os.getpid()}-{time.monotonic_ns()}"
    yield path
    if os.path.exists(path):
        os.unlink(path)


def _key(uid: str) -> str:
    return uid.encode()[:63].decode("utf-8", "replace")


slot_sets = st.fixed_dictionaries({
    "users": st.lists(st.tuples(ids, st.integers(0, 1), u64, u64), min_size=0, max_size=12),
    "streams": st.lists(st.tuples(st.integers(0, 40), st.sampled_from([shm.KIND_TCP_STREAM, shm.KIND_UDP_SESSION,
                                                                       shm.KIND_CONNECTION]),
                                  st.integers(0, 7), st.integers(0, 2**64 - 1), st.integers(0, 2**62),
                                  st.one_of(st.text(max_size=140), hostile), u64, u64, st.booleans()),
                        max_size=30),
    "carried": st.lists(st.tuples(ids, st.integers(0, 2**40), st.integers(0, 2**40)), max_size=6),
    "marks": st.lists(st.tuples(st.integers(0, 40), st.integers(0, 2**41), st.integers(0, 2**41)), max_size=8),
    "recycle": st.lists(st.tuples(st.integers(0, 40), ids), max_size=6),
    "now_offset": st.integers(0, 10**13),
})


def _fill(table, spec):
    """Open the spec's slots; returns writers, (shard, slot, uid) of users and the stream slots."""
    writers = [table.writer(s) for s in range(table.nshards)]
    users = []
    for uid, shard, tx, rx in spec["users"]:
        shard %= len(writers)
        w = writers[shard]
        slot = w.user_slot(uid)
        users.append((shard, slot, uid))
        # A user slot's bytes arrive through its connections' and streams' counts; a direct
        # count stands for traffic of connections already gone.
        w.count(slot, tx, rx)
    streams = []
    for n, kind, state, conn_id, stream_id, addr, tx, rx, foreign in spec["streams"]:
        if not users:
            break
        shard, uslot, uid = users[n % len(users)]
        w = writers[shard]
        key = "other-" + uid if foreign else uid  # a stream whose key differs from its owner's
        slot = w.open(kind, key, user_slot=uslot, conn_id=conn_id, stream_id=stream_id, text_b=addr,
                      text_a=addr, state=state)
        w.count(slot, tx, rx)
        streams.append((shard, slot))
    return writers, users, streams


def _compare(view, node, spec, list_all, listed, carried, marks):
    table = node.table
    live = node.live_users()
    totals = node.user_totals(live)
    assert view.traffic(table, list_all) == traffic_json(since_baseline(totals, marks), listed if list_all else ())
    assert view.online(table) == online_json(live)
    assert view.totals(table) == json.dumps(traffic_media(node), ensure_ascii=False).encode()
    now = max([table.created_ns] + [r["created_ns"] for r in node.slots()]) + spec["now_offset"]
    rows = stream_records(node)
    assert view.dump_streams(table, now, False) == streams_json(rows)
    assert view.dump_streams(table, now, True, HEADER) == stream_table(rows, now).encode()
    for body in (view.traffic(table, list_all), view.online(table), view.totals(table),
                 view.dump_streams(table, now, False)):
        json.loads(body)
    assert _samples(view.user_metrics(table, USER_FAMILIES)) == _samples(_python_user_metrics(node))


def _python_user_metrics(node) -> bytes:
    """The per-user families as prometheus_client renders them (the collector they replace)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    class Users:
        def collect(self):
            live = node.live_users()
            totals = node.user_totals(live)
            tx = CounterMetricFamily("fastpath_user_tx_bytes", "Bytes sent to targets by a user (client upload)",
                                     labels=["user"])
            rx = CounterMetricFamily("fastpath_user_rx_bytes",
                                     "Bytes received from targets for a user (client download)", labels=["user"])
            online = GaugeMetricFamily("fastpath_user_online_connections", "Authenticated connections of a user",
                                       labels=["user"])
            for uid in sorted(totals):
                tx.add_metric([uid], totals[uid][0])
                rx.add_metric([uid], totals[uid][1])
                online.add_metric([uid], live[uid][2] if uid in live else 0)
            yield from (tx, rx, online)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Users())
    return generate_latest(registry)


def _samples(body: bytes) -> list:
    """Families as Prometheus reads them: (name, type, help, [(sample, labels, value)]) in
    order (floats on both sides: the format's values are floats)."""
    from prometheus_client.parser import text_string_to_metric_families
    return [(f.name, f.type, f.documentation, [(s.name, s.labels, float(s.value)) for s in f.samples])
            for f in text_string_to_metric_families(body.decode())]


@SETTINGS
@given(spec=slot_sets, nshards=st.integers(1, 2), list_all=st.booleans())
def test_view_renders_what_the_python_path_renders(seg_path, spec, nshards, list_all):
    if os.path.exists(seg_path):
        os.unlink(seg_path)
    table = shm.CounterTable.create(seg_path, nshards, 128, 1)
    writers, users, streams = _fill(table, spec)
    reader = shm.CounterTable.attach(seg_path, readonly=True)
    carried = {_key(uid): (tx, rx) for uid, tx, rx in spec["carried"]}
    known = sorted({u for _s, _sl, u in users} | set(carried)) or ["nobody"]
    marks = {_key(known[i % len(known)]): (tx, rx) for i, tx, rx in spec["marks"]}
    listed = [_key(uid) for uid, *_ in spec["carried"][:2]] + ["listed-only"]
    node = Node(reader, carried)
    view = tv.TrafficView()
    view.load([(u, *v) for u, v in carried.items()], [(u, *v) for u, v in marks.items()], listed)
    _compare(view, node, spec, list_all, listed, carried, marks)
    # Slots recycled under other ids, more bytes: the same view must follow.
    for n, uid in spec["recycle"]:
        if streams:
            shard, slot = streams.pop(n % len(streams))
            writers[shard].close(slot)
            if users:
                ushard, uslot, _u = users[n % len(users)]
                new = writers[ushard].open(shm.KIND_TCP_STREAM, uid, user_slot=uslot, stream_id=n)
                writers[ushard].count(new, n, n + 1)
    _compare(view, node, spec, list_all, listed, carried, marks)


def test_clear_rows_are_the_new_baselines(seg_path):
    table = shm.CounterTable.create(seg_path, 1, 64, 1)
    w = table.writer(0)
    a, b = w.user_slot("a"), w.user_slot("b")
    w.count(a, 10, 20)
    view = tv.TrafficView()
    view.load([("b", 5, 0)], [("a", 4, 30)])
    body, rows = view.traffic_clear(table)
    # a: rx below its mark reports 0 and the whole total becomes the mark, as read_traffic does.
    assert body == b'{"a":{"tx":6,"rx":0},"b":{"tx":5,"rx":0}}'
    assert rows == [("a", 10, 20), ("b", 5, 0)]
    view.set_baselines(rows)
    assert view.traffic(table) == b"{}"
    w.count(b, 1, 2)
    assert view.traffic(table) == b'{"b":{"tx":1,"rx":2}}'


@given(st.binary(max_size=80))
@settings(max_examples=400)
def test_utf8_decoding_matches_python_replace(raw):
    decoded = raw.decode("utf-8", "replace")
    assert tv.text(raw) == (decoded.encode(), len(decoded))
    assert tv.json_text(raw) == json.dumps(decoded, ensure_ascii=False).encode()


@given(st.text(max_size=40))
def test_json_strings_match_json_dumps(text):
    assert tv.json_text(text.encode()) == json.dumps(text, ensure_ascii=False).encode()


@given(st.integers(0, 2**63))
@settings(max_examples=400)
def test_go_time_renderings(ns):
    assert tv.go_duration(ns) == go_duration(ns)
    assert tv.rfc3339_nano(ns) == rfc3339_nano(ns)
    assert tv.iso_us(ns) == validation.iso(ns / 1e9)


@pytest.mark.parametrize("ns", [0, 1, 999, 1000, 1500, 999_999, 1_000_000, 12_000_000, 999_999_999,
                                1_000_000_000, 60_000_000_000, 3_599_999_999_999, 3_600_000_000_000,
                                1731049665_956956773, 1731049665_500000000, 1731049665_999999500,
                                951782400_000000000, 4102444800_000000000])
def test_time_edges(ns):
    assert tv.go_duration(ns) == go_duration(ns)
    assert tv.rfc3339_nano(ns) == rfc3339_nano(ns)
    assert tv.iso_us(ns) == validation.iso(ns / 1e9)


def test_a_new_user_slot_is_found_within_the_discovery_interval(seg_path):
    table = shm.CounterTable.create(seg_path, 2, 64, 1)
    w0, w1 = table.writer(0), table.writer(1)
    w0.count(w0.user_slot("a"), 1, 1)
    view = tv.TrafficView()
    view.load([], [])
    assert view.traffic(table) == b'{"a":{"tx":1,"rx":1}}'
    w1.count(w1.user_slot("a"), 10, 10)   # the id's first slot in another shard
    w0.count(w0.user_slot("b"), 5, 0)
    time.sleep(0.11)
    assert view.traffic(table) == b'{"a":{"tx":11,"rx":11},"b":{"tx":5,"rx":0}}'
    # Known slots are read between full scans: their bytes are never stale.
    w1.count(w1.user_slot("a"), 1, 0)
    assert view.traffic(table) == b'{"a":{"tx":12,"rx":11},"b":{"tx":5,"rx":0}}'


def test_user_metrics_escape_label_values_and_keep_big_counts_exact(seg_path):
    table = shm.CounterTable.create(seg_path, 1, 64, 1)
    w = table.writer(0)
    w.count(w.user_slot('a"b\\c\nd☃'), 2**60 + 1, 7)
    view = tv.TrafficView()
    view.load([("carried-only", 5, 6)], [])
    body = view.user_metrics(shm.CounterTable.attach(seg_path, readonly=True), USER_FAMILIES)
    assert b'fastpath_user_tx_bytes_total{user="a\\"b\\\\c\\nd\xe2\x98\x83"} 1152921504606846977\n' in body
    assert b'fastpath_user_rx_bytes_total{user="carried-only"} 6\n' in body
    assert b'fastpath_user_online_connections{user="carried-only"} 0\n' in body
    assert body.startswith(b"# HELP fastpath_user_tx_bytes_total ")
    with pytest.raises(ValueError):
        view.user_metrics(table, USER_FAMILIES[:2])
