"""The shared-memory counter table: layout, writer, recovery, and readers racing writers."""
import multiprocessing as mp
import os
import signal
import time

import pytest

import fastpath.shm as shm


@pytest.fixture
def seg_path(tmp_path):
    path = f"/dev/shm/fastpath-test-{os.getpid()}-{time.monotonic_ns()}"
    yield path
    if os.path.exists(path):
        os.unlink(path)


def test_counts_land_on_stream_connection_and_user(seg_path):
    table = shm.CounterTable.create(seg_path, 2, 64, 7)
    w = table.writer(1)
    user = w.user_slot("alice")
    conn = w.open(shm.KIND_CONNECTION, "alice", user_slot=user, text_a="10.0.0.1:5000", conn_id=0xABCD)
    stream = w.open(shm.KIND_TCP_STREAM, "alice", user_slot=user, conn_slot=conn, stream_id=4,
                    text_b="example.com:80", state=shm.STATE_ESTAB)
    w.count(stream, 100, 0)
    w.count(stream, 0, 250)
    assert shm.scan_users(table)["alice"][:4] == [100, 250, 1, 1]
    rec = w.read(conn)
    assert (rec["tx"], rec["rx"], rec["text_a"], rec["conn_id"]) == (100, 250, "10.0.0.1:5000", 0xABCD)
    streams = shm.scan_slots(table, [shm.KIND_TCP_STREAM])
    assert [(s["key"], s["text_b"], s["tx"], s["rx"], s["stream_id"], s["shard"]) for s in streams] == [
        ("alice", "example.com:80", 100, 250, 4, 1)]
    w.close(stream)
    # Freeing the stream loses nothing: its bytes were counted on the user slot as they came.
    assert shm.scan_users(table)["alice"][:4] == [100, 250, 1, 0]
    assert shm.scan_slots(table, [shm.KIND_TCP_STREAM]) == []


def test_users_summed_across_shards(seg_path):
    table = shm.CounterTable.create(seg_path, 3, 16, 1)
    for shard in range(3):
        w = table.writer(shard)
        w.count(w.user_slot("bob"), shard + 1, 10 * (shard + 1))
    assert shm.scan_users(table)["bob"][:2] == [6, 60]
    assert shm.scan_totals(table) == (3, 6, 60)


def test_slots_are_recycled_and_full_shard_is_an_error(seg_path):
    table = shm.CounterTable.create(seg_path, 1, 4, 1)
    w = table.writer(0)
    u = w.user_slot("u")
    slots = [w.open(shm.KIND_TCP_STREAM, "u", user_slot=u) for _ in range(3)]
    with pytest.raises(MemoryError):
        w.open(shm.KIND_TCP_STREAM, "u", user_slot=u)
    w.close(slots[1])
    again = w.open(shm.KIND_UDP_SESSION, "u", user_slot=u)
    assert again == slots[1]
    assert w.read(again)["tx"] == 0 and w.read(again)["kind"] == shm.KIND_UDP_SESSION
    assert table.shard_info(0)["high_water"] == 4


def test_long_text_is_truncated_not_overflowing(seg_path):
    table = shm.CounterTable.create(seg_path, 1, 4, 1)
    w = table.writer(0)
    s = w.open(shm.KIND_TCP_STREAM, "k" * 100, text_a="a" * 100, text_b="b" * 300)
    rec = w.read(s)
    assert (len(rec["key"]), len(rec["text_a"]), len(rec["text_b"])) == (63, 63, 127)


def test_attach_rejects_foreign_files(seg_path):
    with open(seg_path, "wb") as f:
        f.write(b"\0" * 4096)
    with pytest.raises(ValueError, match="not a fastpath counter segment"):
        shm.CounterTable.attach(seg_path)


def test_readonly_mapping_has_no_writer(seg_path):
    shm.CounterTable.create(seg_path, 1, 4, 1)
    reader = shm.CounterTable.attach(seg_path, readonly=True)
    with pytest.raises(PermissionError):
        reader.writer(0)


def _crashing_writer(path, ready):
    table = shm.CounterTable.attach(path)
    w = table.writer(0)
    u = w.user_slot("carol")
    conn = w.open(shm.KIND_CONNECTION, "carol", user_slot=u)
    stream = w.open(shm.KIND_TCP_STREAM, "carol", user_slot=u, conn_slot=conn)
    w.count(stream, 1234, 5678)
    ready.set()
    time.sleep(60)


def test_writer_killed_mid_flight_restarts_with_counters_intact(seg_path):
    shm.CounterTable.create(seg_path, 1, 32, 9)
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_crashing_writer, args=(seg_path, ready))
    proc.start()
    assert ready.wait(30)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    table = shm.CounterTable.attach(seg_path)
    w = table.writer(0)  # the restarted worker adopts the shard
    assert shm.scan_users(table)["carol"][:4] == [1234, 5678, 0, 0]
    assert table.shard_info(0)["restarts"] == 1
    assert shm.scan_slots(table, [shm.KIND_CONNECTION, shm.KIND_TCP_STREAM]) == []
    w.count(w.user_slot("carol"), 1, 1)
    assert shm.scan_users(table)["carol"][:2] == [1235, 5679]


def _churning_writer(path, stop, result):
    """Opens, counts and frees stream slots as fast as it can; every slot's text is derived
    from its key so a torn read is detectable."""
    table = shm.CounterTable.attach(path)
    w = table.writer(0)
    users = [w.user_slot(f"user{i}") for i in range(8)]
    sent = [0] * 8
    live = []
    n = 0
    while not stop.is_set():
        i = n % 8
        s = w.open(shm.KIND_TCP_STREAM, f"user{i}", user_slot=users[i], stream_id=n,
                   text_a=f"a-user{i}-" + "x" * (n % 40), text_b=f"b-user{i}-" + "y" * (n % 90))
        w.count(s, i + 1, 0)
        sent[i] += i + 1
        live.append(s)
        if len(live) > 20:
            w.close(live.pop(0))
        n += 1
    result.put(sent)


def test_reader_racing_writer_never_sees_torn_record_and_sums_exactly(seg_path):
    shm.CounterTable.create(seg_path, 1, 64, 3)
    reader = shm.CounterTable.attach(seg_path, readonly=True)
    ctx = mp.get_context("spawn")
    stop, result = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_churning_writer, args=(seg_path, stop, result))
    proc.start()
    scans = 0
    last_totals = {}
    deadline = time.monotonic() + 3.0
    try:
        while time.monotonic() < deadline:
            for rec in shm.scan_slots(reader, [shm.KIND_TCP_STREAM]):
                key = rec["key"]
                assert rec["text_a"].startswith(f"a-{key}-"), rec
                assert rec["text_b"].startswith(f"b-{key}-"), rec
                assert set(rec["text_a"][len(key) + 3:]) <= {"x"}
            totals = shm.scan_users(reader)
            for key, rec in totals.items():
                assert rec[0] >= last_totals.get(key, 0), "a user total went backwards"
                last_totals[key] = rec[0]
            scans += 1
    finally:
        stop.set()
        sent = result.get(timeout=30)
        proc.join(30)
    assert scans > 10
    assert sum(sent) > 1000
    final = shm.scan_users(reader)
    assert [final[f"user{i}"][0] for i in range(8)] == sent


def test_reader_does_not_hang_on_a_writer_that_died_inside_its_seqlock(seg_path):
    """A writer killed between making a slot's seq odd and making it even again: readers wait
    for it a bounded time (about a second), then read the slot as it is, and the shard's next
    writer closes the section."""
    import mmap
    import struct

    table = shm.CounterTable.create(seg_path, 1, 32, 9)
    w = table.writer(0)
    u = w.user_slot("dave")
    w.count(u, 10, 20)
    offset = 64 + 64 + u * 384                 # segment header, shard header, slot
    with open(seg_path, "r+b") as f, mmap.mmap(f.fileno(), 0) as m:
        (seq,) = struct.unpack_from("<Q", m, offset)
        assert seq % 2 == 0
        struct.pack_into("<Q", m, offset, seq + 1)      # left odd, as by a writer that died
        reader = shm.CounterTable.attach(seg_path, readonly=True)
        start = time.monotonic()
        assert shm.scan_users(reader)["dave"][:2] == [10, 20]
        waited = time.monotonic() - start
        assert 0.5 < waited < 10, waited
        start = time.monotonic()
        assert w.read(u)["tx"] == 10
        assert 0.5 < time.monotonic() - start < 10
        shm.CounterTable.attach(seg_path).writer(0)      # the restarted writer adopts the shard
        (seq,) = struct.unpack_from("<Q", m, offset)
        assert seq % 2 == 0
        start = time.monotonic()
        assert shm.scan_users(reader)["dave"][:2] == [10, 20]
        assert time.monotonic() - start < 0.5
