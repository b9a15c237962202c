"""The face's parts without sockets: key check, panel users → table users, chunk assembly,
traffic since the last reset (exact under concurrent resets), the log fan-out."""
import asyncio
import os
import secrets
import threading
import uuid

import pytest

from fastpath.control.node_model import NodeModel
from fastpath.control.pasarguard import service_pb2 as pb
from fastpath.control.pasarguard.accounting import SCOPE_USERS, Accounting
from fastpath.control.pasarguard.auth import check_api_key
from fastpath.control.pasarguard.errors import FaceError, Failure
from fastpath.control.pasarguard.face import host_of
from fastpath.control.pasarguard.node_log import LogFanout
from fastpath.control.pasarguard.users import (ChunkAssembler, InboundMap, check_full_set, convert,
                                      hysteria_tags)
from fastpath.config import parse_config
from fastpath.shm import CounterTable
from fastpath.store import User

KEY = uuid.UUID("3b241101-e2bb-4255-8caf-4136c566a962")


def failure(fn, *args) -> FaceError:
    with pytest.raises(FaceError) as err:
        fn(*args)
    return err.value


# -- x-api-key ---------------------------------------------------------------------------------
def test_api_key_statuses():
    check_api_key(str(KEY), KEY)
    check_api_key(str(KEY).upper(), KEY)
    check_api_key("{" + KEY.hex + "}", KEY)
    assert failure(check_api_key, None, KEY).failure is Failure.UNAUTHENTICATED
    assert failure(check_api_key, "  ", KEY).failure is Failure.UNAUTHENTICATED
    assert failure(check_api_key, "not-a-uuid", KEY).failure is Failure.BAD_KEY
    assert failure(check_api_key, str(uuid.uuid4()), KEY).failure is Failure.FORBIDDEN
    assert (Failure.UNAUTHENTICATED.http_status, Failure.BAD_KEY.http_status, Failure.FORBIDDEN.http_status) \
        == (401, 422, 403)


# -- users -------------------------------------------------------------------------------------
def panel_user(email, auth="", inbounds=("hysteria2",)):
    return pb.User(email=email, proxies=pb.Proxy(hysteria=pb.Hysteria(auth=auth)), inbounds=list(inbounds))


def test_panel_user_becomes_table_user():
    config = '{"inbounds": [{"tag": "HY2 in", "protocol": "hysteria"}, {"tag": "VLESS", "protocol": "vless"}]}'
    imap = InboundMap.from_backend("hysteria2", config, exclude=["old"])
    assert hysteria_tags(config) == {"HY2 in"}
    changes = convert([panel_user("7.alice", "s1", ["HY2 in", "VLESS", "old"]),
                       panel_user("8.bob", "", ["VLESS"]),
                       panel_user("9.carol", "s3", ["old"]),
                       panel_user("10.dave", "s4", [])], imap)
    alice = changes[0].user
    assert (alice.id, alice.auth_secret, alice.inbounds, alice.source) == \
        ("7.alice", "s1", ["hysteria2", "VLESS"], "pasarguard")
    assert alice.meta["panel_inbounds"] == ["HY2 in", "VLESS", "old"]
    # Every protocol has an entry (empty here), so no credential is derived from the auth.
    assert alice.meta["proxies"]["vless"] == {"id": "", "flow": ""}
    assert set(alice.meta["proxies"]) == {"vmess", "vless", "trojan", "shadowsocks"}
    assert changes[1].user.auth_secret is None          # no Hysteria credentials: stays, cannot connect
    assert changes[2].user is None and changes[3].user is None   # no inbound left: removal


@pytest.mark.parametrize("config", ["", "not json", "[1]", '{"inbounds": 3}',
                                    '{"inbounds": [{"protocol": "hysteria"}]}'])
def test_backend_config_that_is_not_xray_json_is_ignored(config):
    assert hysteria_tags(config) == set()


def test_missing_email_refuses_the_whole_set():
    err = failure(convert, [panel_user("a", "s"), panel_user("", "t")], InboundMap("hysteria2"))
    assert err.failure is Failure.BAD_REQUEST and "#2 has no email" in err.message
    err = failure(convert, [panel_user("x" * 64, "s")], InboundMap("hysteria2"))
    assert "longer than 63 bytes" in err.message


def test_full_set_clashes():
    imap = InboundMap("hysteria2")
    native = User(id="default", auth_secret="native-secret", source="native")
    assert failure(check_full_set, convert([panel_user("default", "x")], imap), [native]).failure is Failure.REFUSED
    err = failure(check_full_set, convert([panel_user("a", "native-secret")], imap), [native])
    assert err.message.startswith("failed to update users: ")
    assert failure(check_full_set, convert([panel_user("a", "s"), panel_user("b", "s")], imap), []).failure \
        is Failure.REFUSED
    assert failure(check_full_set, convert([panel_user("a", "s"), panel_user("a", "t")], imap), []).failure \
        is Failure.BAD_REQUEST
    assert [u.id for u in check_full_set(convert([panel_user("a", "s"), panel_user("b", "")], imap), [native])] \
        == ["a", "b"]


def chunk(index, emails, last=False):
    return pb.UsersChunk(index=index, last=last, users=[panel_user(e, e) for e in emails])


def test_chunks_are_put_in_index_order():
    a = ChunkAssembler()
    assert not a.add(chunk(2, ["e"]))
    assert not a.add(chunk(0, ["a", "b"]))
    assert not a.add(chunk(1, ["c", "d"]))
    assert a.add(chunk(3, ["f"], last=True))
    assert [u.email for u in a.users()] == ["a", "b", "c", "d", "e", "f"]


@pytest.mark.parametrize("chunks, message", [
    ([chunk(0, ["a"]), chunk(2, ["c"], last=True)], "missing chunk index 1"),
    ([chunk(1, ["a"], last=True)], "missing chunk index 0"),
    ([chunk(0, ["a"]), chunk(1, ["b"])], "missing final chunk indicator"),
    ([chunk(0, [], last=True)], "no users received"),
    ([chunk(5, ["x"]), chunk(0, ["a"], last=True)], "chunk index 5 comes after the last index 0"),
    ([chunk(0, ["a"]), chunk(2**63, ["b"], last=True)], "missing chunk index 1"),
])
def test_chunk_errors(chunks, message):
    a = ChunkAssembler()
    for c in chunks:
        a.add(c)
    err = failure(a.users)
    assert err.failure is Failure.BAD_REQUEST and err.message == message


def test_host_of():
    assert host_of("203.0.113.9:4433") == "203.0.113.9"
    assert host_of("[2001:db8::1]:443") == "2001:db8::1"
    assert host_of("2001:db8::1") == "2001:db8::1"


# -- traffic since the last reset --------------------------------------------------------------
@pytest.fixture
def counters(tmp_path):
    config = parse_config({}, data_dir=tmp_path)
    tmp_path.mkdir(exist_ok=True)
    table = CounterTable.create(config.counter_segment_path, 1, 256, secrets.randbits(62))
    node = NodeModel(config)
    try:
        yield node, table.writer(0)
    finally:
        table.close()
        os.unlink(config.counter_segment_path)


def add_users(node, acc, *ids):
    with node.ledger.write() as db:
        acc.adopt(db, ids)
    node.store.replace_users("pasarguard", [User(id=i, auth_secret="s-" + i) for i in ids])


def test_reset_returns_then_zeroes(counters):
    node, w = counters
    acc = Accounting(node)
    add_users(node, acc, "alice", "bob")
    w.count(w.user_slot("alice"), 1000, 50_000)
    assert [(t.name, t.uplink, t.downlink) for t in acc.users(reset=False)] == [("alice", 1000, 50_000)]
    assert [(t.name, t.uplink, t.downlink) for t in acc.users(reset=True)] == [("alice", 1000, 50_000)]
    assert acc.users(reset=True) == []
    w.count(w.user_slot("alice"), 1, 2)
    assert acc.user("alice", reset=True).uplink == 1
    assert acc.user("alice", reset=False).uplink == 0
    assert acc.user("nobody", reset=False) is None


def test_removed_user_reports_its_last_bytes_once_and_a_new_one_not_its_past(counters):
    node, w = counters
    acc = Accounting(node)
    w.count(w.user_slot("carol"), 7777, 7777)          # traffic before the panel owned the id
    add_users(node, acc, "alice", "carol")
    assert acc.users(reset=True) == []
    w.count(w.user_slot("alice"), 10, 20)
    node.store.replace_users("pasarguard", [User(id="carol", auth_secret="s-carol")])  # alice removed
    assert [(t.name, t.uplink) for t in acc.users(reset=True)] == [("alice", 10)]
    acc.users(reset=True)                                # nothing new: alice's row is dropped
    with node.store.transaction(immediate=False) as db:
        assert {r[0] for r in db.execute("SELECT user_id FROM baselines WHERE scope = ?", (SCOPE_USERS,))} \
            == {"carol"}
    add_users(node, acc, "alice", "carol")               # back again: her old bytes are not re-counted
    assert acc.users(reset=True) == []


def test_concurrent_resets_never_double_count_or_lose_bytes(counters):
    node, w = counters
    acc = Accounting(node)
    ids = [f"u{i}" for i in range(20)]
    add_users(node, acc, *ids)
    slots = [w.user_slot(i) for i in ids]
    stop = threading.Event()
    written = {i: [0, 0] for i in ids}
    reported = {i: [0, 0] for i in ids}
    lock = threading.Lock()

    def write():
        n = 0
        while not stop.is_set():
            k = n % len(ids)
            w.count(slots[k], 3, 5)
            written[ids[k]][0] += 3
            written[ids[k]][1] += 5
            n += 1

    def reset():
        while not stop.is_set():
            rows = acc.users(reset=True)
            with lock:
                for t in rows:
                    reported[t.name][0] += t.uplink
                    reported[t.name][1] += t.downlink

    threads = [threading.Thread(target=write)] + [threading.Thread(target=reset) for _ in range(3)]
    for t in threads:
        t.start()
    threading.Event().wait(1.5)
    stop.set()
    for t in threads:
        t.join()
    for t in acc.users(reset=True):
        reported[t.name][0] += t.uplink
        reported[t.name][1] += t.downlink
    assert sum(v[0] for v in written.values()) > 1000
    assert reported == written


def test_tags_carry_all_traffic(counters):
    node, w = counters
    acc = Accounting(node)
    w.count(w.user_slot("a"), 1, 2)
    w.count(w.user_slot("b"), 10, 20)
    assert (acc.tag("pasarguard:outbound", "direct", reset=True).uplink) == 11
    assert (acc.tag("pasarguard:outbound", "direct", reset=True).uplink) == 0
    assert (acc.tag("pasarguard:inbound", "hysteria2", reset=False).downlink) == 22


# -- log fan-out -------------------------------------------------------------------------------
def test_every_subscriber_gets_every_line(tmp_path):
    path = tmp_path / "node.log"
    path.write_text("old 1\nold 2\n")
    fanout = LogFanout(path, history=1, queue_size=3)

    async def scenario():
        fanout.poll()
        a, b = fanout.subscribe(), fanout.subscribe()
        with open(path, "a") as f:
            f.write("new 1\nnew 2\npart")
        fanout.poll()
        got_a = [await a.next_line() for _ in range(3)]
        with open(path, "a") as f:
            f.write("ial\n")
        fanout.poll()
        got_b = [await b.next_line() for _ in range(3)]   # b holds 3 of 4: its oldest was dropped
        got_b.append(await b.next_line())
        path.rename(tmp_path / "node.log.1")              # rotation
        path.write_text("after rotation\n")
        fanout.poll()
        return got_a, got_b, await a.next_line(), await a.next_line()

    got_a, got_b, a_next, a_rot = asyncio.run(scenario())
    assert got_a == ["old 2", "new 1", "new 2"]
    assert got_b[0].startswith("[fastpath: 1 log line(s) dropped")
    assert got_b[1:] == ["new 1", "new 2", "partial"]
    assert (a_next, a_rot) == ("partial", "after rotation")


def test_delta_clashes():
    from fastpath.control.pasarguard.users import check_delta, last_wins
    imap = InboundMap("hysteria2")
    source_of = {"operator": "native", "a": "pasarguard"}
    owner_of = {"op-secret": "operator", "sa": "a"}
    check_delta(convert([panel_user("a", "sa"), panel_user("b", "sb")], imap), source_of, owner_of)
    for msgs in ([panel_user("operator", "x")], [panel_user("b", "op-secret")], [panel_user("b", "sa")],
                 [panel_user("b", "s"), panel_user("c", "s")]):
        assert failure(check_delta, convert(msgs, imap), source_of, owner_of).failure is Failure.REFUSED
    # "a" gives its secret up in the same delta: "b" may take it.
    check_delta(convert([panel_user("a", "", []), panel_user("b", "sa")], imap), source_of, owner_of)
    changes = last_wins(convert([panel_user("b", "s1"), panel_user("b", "s2")], imap))
    assert [c.user.auth_secret for c in changes] == ["s2"]


def test_started_backend_survives_a_restart_of_the_face(counters):
    from fastpath.control.pasarguard.config import parse_pasarguard_config
    from fastpath.control.pasarguard.face import PasarGuardFace

    class Notifier:
        calls = 0
        client = None          # no supervisor to reach

        async def notify(self):
            Notifier.calls += 1

    node, _w = counters
    settings = parse_pasarguard_config({"apiKey": str(KEY)})
    face = PasarGuardFace(node, settings, notifier=Notifier())
    assert not face.started and face.info().started is False
    config = '{"inbounds": [{"tag": "HY", "protocol": "hysteria2"}]}'
    info = asyncio.run(face.start(pb.Backend(config=config, keep_alive=30, users=[panel_user("a", "sa", ["HY"])])))
    assert info.started and "keep_alive 30s" in info.core_version and Notifier.calls == 1
    assert node.store.get_user("a").inbounds == ["hysteria2"]
    again = PasarGuardFace(node, settings, notifier=Notifier())
    assert again.started and again.keep_alive == 30 and again.inbounds.aliases == {"HY"}
    asyncio.run(again.stop())
    assert node.store.list_users(source="pasarguard") == []
    assert not PasarGuardFace(node, settings, notifier=Notifier()).started
