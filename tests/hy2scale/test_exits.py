"""Outbound peers and single-hop exits, with two real nodes: B is the exit (a scale user
``peeruser`` whose secret A's client ``b`` sends), A the entry.  A user of A whose ``exit_via``
is ``b`` reaches its targets through B, counted on both; when the exit cannot carry a stream
the stream fails with a message and nothing is dialed from A (a recording target proves it)."""
from __future__ import annotations

import asyncio
import hashlib
import json
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastpath.hy2.client.client import ConnectError, simple_client
from fastpath.worker.event_loop import run
from tests.hy2.targets import pattern
from tests.hy2scale.conftest import SCALE, ScaleClient
from tests.support.node import NodeProcess, free_udp_port

pytestmark = pytest.mark.integration

MB = 1024 * 1024


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    with NodeProcess(tmp_path_factory.mktemp("exit-b"), {"scale": dict(SCALE)}) as b, \
            NodeProcess(tmp_path_factory.mktemp("exit-a"), {"scale": dict(SCALE)}, workers=2) as a:
        a.hy2, b.hy2 = a.config["listen"], b.config["listen"]
        a.b_addr = b.hy2
        a.scale, b.scale = ScaleClient(a), ScaleClient(b)
        r = b.scale("POST", "/users", {"username": "peeruser", "password": "pw-peer"})
        assert r.status == 201, r.text
        b.peeruser = r.json()["id"]
        r = a.scale("POST", "/clients", {"name": "b", "addr": b.hy2, "password": "peeruser:pw-peer",
                                         "insecure": True})
        assert r.status == 201, r.text
        yield a, b


class Recorder:
    """A TCP target that counts the connections it accepts (and echoes)."""

    def __init__(self, targets):
        self.accepted = 0

        async def handler(reader, writer):
            self.accepted += 1
            data = await reader.read(65536)
            writer.write(data)
            await writer.drain()
            writer.close()
        self.port = targets.tcp(handler)


def used(scale, user_id) -> int:
    r = scale.get(f"/users/{user_id}")
    assert r.status == 200, r.text
    return r.json()["traffic_used"]


def make_user(scale, name, **fields):
    r = scale("POST", "/users", {"username": name, "password": f"pw-{name}", **fields})
    assert r.status == 201, r.text
    return r.json()["id"]


async def upload_hash(client, port, n):
    reader, writer = await client.open_tcp(f"127.0.0.1:{port}")
    writer.write(struct.pack(">Q", n))
    h = hashlib.sha256()
    for chunk in pattern(n, 7):
        h.update(chunk)
        writer.write(chunk)
        await writer.drain()
    digest = await asyncio.wait_for(reader.readexactly(32), 30)
    writer.close()
    return digest == h.digest()


async def download_hash(client, port, n):
    reader, writer = await client.open_tcp(f"127.0.0.1:{port}")
    writer.write(struct.pack(">QQ", n, 11))
    h = hashlib.sha256()
    got = 0
    while got < n:
        data = await asyncio.wait_for(reader.read(1 << 20), 30)
        if not data:
            break
        h.update(data)
        got += len(data)
    writer.close()
    want = hashlib.sha256(b"".join(pattern(n, 11))).digest()
    return got == n and h.digest() == want


async def echo(client, port, n=50_000):
    reader, writer = await client.open_tcp(f"127.0.0.1:{port}")
    data = bytes(range(256)) * (n // 256)
    writer.write(data)
    ok = await asyncio.wait_for(reader.readexactly(len(data)), 10) == data
    writer.close()
    return ok


def settle(read, timeout=5.0):
    """Poll ``read()`` until two reads agree (the counters have caught up)."""
    last = read()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = read()
        if now == last:
            return now
        last = now
    return last


def test_exit_user_goes_through_b_and_is_counted_on_both(pair, targets):
    a, b = pair
    alice = make_user(a.scale, "alice", exit_via="b")
    bob = make_user(a.scale, "bob")
    assert a.scale.get(f"/users/{alice}").json()["exit_via"] == "b"
    b0, alice0 = used(b.scale, b.peeruser), used(a.scale, alice)

    async def as_alice():
        client = simple_client(a.hy2, "alice:pw-alice")
        await client.connect()
        assert await upload_hash(client, targets.sink, 3 * MB)
        assert await download_hash(client, targets.source, 2 * MB)
        assert await echo(client, targets.echo)
        await client.close()
    run(as_alice())
    moved_b = settle(lambda: used(b.scale, b.peeruser)) - b0
    moved_alice = settle(lambda: used(a.scale, alice)) - alice0
    assert moved_alice >= 5 * MB
    assert moved_b == moved_alice               # every byte of alice crossed B, counted there

    async def as_bob():
        client = simple_client(a.hy2, "bob:pw-bob")
        await client.connect()
        assert await echo(client, targets.echo, 500_000)
        await client.close()
    before = used(b.scale, b.peeruser)
    run(as_bob())
    assert used(a.scale, bob) >= 999_000
    assert settle(lambda: used(b.scale, b.peeruser)) == before     # bob exits at A

    # The peer list: A itself first, then b, connected, with a measured latency.
    peers = a.scale.get("/peers").json()
    assert peers[0]["is_self"] is True and peers[0]["direction"] == "local"
    assert peers[0]["name"] == a.scale.get("/node").json()["node_id"]
    entry = next(p for p in peers if p["name"] == "b")
    assert entry["direction"] == "outbound" and entry["connected"] is True
    assert entry["latency_ms"] is not None and 0 < entry["latency_ms"] < 1000
    assert entry["nested"] is False and entry["children"] == []
    assert {"tx_rate", "rx_rate", "version"} <= set(entry)


def test_rates_show_traffic_through_the_peer(pair, targets):
    a, _b = pair
    make_user(a.scale, "rita", exit_via="b")

    async def main():
        client = simple_client(a.hy2, "rita:pw-rita")
        await client.connect()
        assert await upload_hash(client, targets.sink, 4 * MB)
        peers = await asyncio.to_thread(a.scale.get, "/peers")
        await client.close()
        return next(p for p in peers.json() if p["name"] == "b")
    def peer_b():
        return next(p for p in a.scale.get("/peers").json() if p["name"] == "b")

    time.sleep(1.1)                 # a rate sample before the burst (samples are 1 s apart)
    rates = [run(main())["tx_rate"]]
    # The rate is the bytes between the oldest and newest of the last samples (1 s apart, a
    # span of 1 to ~5 s): the 4 MB burst must show as at least 4 MB over the longest span.
    # Polled with a deadline until a sample after the burst is in.  The upper bound allows
    # for earlier tests' bytes still inside the window; it catches a rate in bits or a sum
    # counted twice.
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and max(rates) < 4 * MB / 6.5:
        time.sleep(0.2)
        rates.append(peer_b()["tx_rate"])
    assert 4 * MB / 6.5 <= max(rates) <= 3 * 4.2 * MB, rates


def test_disabled_or_unreachable_exit_fails_and_never_dials_directly(pair, targets):
    a, _b = pair
    recorder = Recorder(targets)
    make_user(a.scale, "dora", exit_via="b")
    dead_port = free_udp_port()
    assert a.scale("POST", "/clients", {"name": "dead", "addr": f"127.0.0.1:{dead_port}",
                                        "password": "x", "insecure": True}).status == 201
    make_user(a.scale, "carl", exit_via="dead")
    r = a.scale("PUT", "/clients/b/disable", {"disabled": True})
    assert r.status == 200 and r.json()["disabled"] is True

    async def refused(auth, words):
        client = simple_client(a.hy2, auth)
        await client.connect()
        with pytest.raises(ConnectError) as info:
            await client.open_tcp(f"127.0.0.1:{recorder.port}")
        await client.close()
        assert words in str(info.value), str(info.value)

    async def main():
        await refused("dora:pw-dora", "disabled")
        await refused("carl:pw-carl", "unreachable")
        # The target itself works: a user without an exit reaches it from A.
        direct = simple_client(a.hy2, "bob2:pw-bob2")
        await direct.connect()
        reader, writer = await direct.open_tcp(f"127.0.0.1:{recorder.port}")
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
        await direct.close()
    make_user(a.scale, "bob2")
    run(main())
    assert recorder.accepted == 1              # bob2's only: dora and carl went nowhere
    # Enabled again: dora's streams go through B.
    assert a.scale("PUT", "/clients/b/disable", {"disabled": False}).json()["disabled"] is False

    async def again():
        client = simple_client(a.hy2, "dora:pw-dora")
        await client.connect()
        assert await echo(client, targets.echo)
        await client.close()
    run(again())
    peers = {p["name"]: p for p in a.scale.get("/peers").json()}
    assert peers["dead"]["connected"] is False and peers["dead"]["latency_ms"] is None
    assert a.scale("DELETE", "/clients/dead").status == 409          # carl exits through it
    carl = next(u for u in a.scale.get("/users").json() if u["username"] == "carl")
    assert a.scale("PUT", f"/users/{carl['id']}", {"exit_via": ""}).status == 200
    assert a.scale("DELETE", "/clients/dead").status == 200


def test_later_addresses_are_tried_when_addr_fails(pair, targets):
    a, b = pair
    r = a.scale("POST", "/clients", {"name": "b-alt", "addr": f"127.0.0.1:{free_udp_port()}",
                                     "addrs": [b.hy2], "password": "peeruser:pw-peer", "insecure": True})
    assert r.status == 201, r.text
    make_user(a.scale, "alma", exit_via="b-alt")
    b0 = used(b.scale, b.peeruser)

    async def main():
        client = simple_client(a.hy2, "alma:pw-alma")
        await client.connect()
        assert await echo(client, targets.echo)
        await client.close()
    run(main())
    assert settle(lambda: used(b.scale, b.peeruser)) - b0 >= 2 * 49_920
    peers = {p["name"]: p for p in a.scale.get("/peers").json()}
    assert peers["b-alt"]["connected"] is True


def test_exit_names_and_worker_answers_fold_as_documented():
    from fastpath.control.hy2scale.peers import merge
    from fastpath.mesh.paths import route_of
    assert route_of({"exit_via": "", "exit_paths": []}) is None
    assert route_of({"exit_via": "b"}) == (("b",), "")
    assert route_of({"exit_paths": ["b"]}) == (("b",), "")
    assert route_of({"exit_via": "b", "exit_paths": ["b", "c/d"], "exit_mode": "quality"}) == (("b", "c/d"), "quality")
    assert route_of({"exit_paths": "b"}) is None and route_of(None) is None
    folded = merge([{"b": {"connected": False, "latency_ms": None, "tx_rate": 5, "rx_rate": 1, "error": "down"}},
                    {"b": {"connected": True, "latency_ms": 3.5, "tx_rate": 10, "rx_rate": 2}},
                    [{"b": {"connected": True, "latency_ms": 2.0, "tx_rate": 0, "rx_rate": 0}}, True],
                    {"error": "worker 3 did not answer"}])
    assert folded == {"b": {"connected": True, "latency_ms": 2.0, "tx_rate": 15, "rx_rate": 3, "error": "down"}}


def test_exit_udp_goes_through_b_or_nowhere(pair, targets):
    a, b = pair
    uid = make_user(a.scale, "uma", exit_via="b")
    b0, a0 = used(b.scale, b.peeruser), used(a.scale, uid)

    async def echo_udp(auth):
        client = simple_client(a.hy2, auth)
        await client.connect()
        udp = await client.udp_session()
        got = []
        for i in range(5):
            udp.send(f"127.0.0.1:{targets.udp}", b"hello %d" % i)
            try:
                got.append(await asyncio.wait_for(udp.recv(), 2))
            except TimeoutError:
                pass
        await client.close()
        return got
    got = run(echo_udp("uma:pw-uma"))
    assert [p for _a, p in got] == [b"hello %d" % i for i in range(5)]
    moved = settle(lambda: used(a.scale, uid)) - a0
    assert moved == 70                                   # 5 x 7 bytes each way
    assert settle(lambda: used(b.scale, b.peeruser)) - b0 == moved
    # The exit disabled: the packets are dropped, not sent from A.
    seen = []

    class Recorder(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            seen.append(data)

    async def listen():
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            Recorder, local_addr=("127.0.0.1", 0))
        return transport
    transport = targets.call(listen())
    port = transport.get_extra_info("sockname")[1]
    assert a.scale("PUT", "/clients/b/disable", {"disabled": True}).status == 200
    try:
        async def send_some():
            client = simple_client(a.hy2, "uma:pw-uma")
            await client.connect()
            udp = await client.udp_session()
            for _ in range(5):
                udp.send(f"127.0.0.1:{port}", b"leak?")
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            await client.close()
        run(send_some())
        assert seen == []
    finally:
        assert a.scale("PUT", "/clients/b/disable", {"disabled": False}).status == 200
        targets.loop.call_soon_threadsafe(transport.close)


def test_client_crud_masks_passwords_and_refuses_bad_bodies(pair):
    a, _b = pair
    s = a.scale
    r = s("POST", "/clients", {"name": "jp", "addr": "127.0.0.1:5565", "addrs": ["127.0.0.2:5565"],
                               "password": "secret-pass", "sni": "jp.example", "max_tx": 100})
    assert r.status == 201, r.text
    assert r.json()["password"] != "secret-pass" and "secret-pass" not in json.dumps(s.get("/clients").json())
    listed = {c["name"]: c for c in s.get("/clients").json()}
    # addrs as the reference lists them: every address, addr first; max_tx in bytes/s.
    assert listed["jp"]["addrs"] == ["127.0.0.1:5565", "127.0.0.2:5565"] and listed["jp"]["disabled"] is False
    assert listed["jp"]["max_tx"] == 100
    # The masked password sent back keeps the stored one (checked through the backup).
    assert s("PUT", "/clients/jp", dict(listed["jp"], sni="jp2.example")).status == 200
    saved = next(c for c in s.get("/backup").json()["clients"] if c["name"] == "jp")
    assert saved["password"] == "secret-pass" and saved["sni"] == "jp2.example"
    assert s("POST", "/clients", {"name": "jp", "addr": "127.0.0.1:1"}).status == 409
    node_id = s.get("/node").json()["node_id"]
    for body, words in (({"addr": "127.0.0.1:1"}, "name"),
                        ({"name": "a/b", "addr": "127.0.0.1:1"}, "name"),
                        ({"name": "x" * 40, "addr": "127.0.0.1:1"}, "name"),
                        ({"name": "ok"}, "addr"),
                        ({"name": "ok", "addr": "nowhere"}, "addr"),
                        ({"name": "ok", "addr": "h:99999"}, "addr"),
                        ({"name": "ok", "addr": "h:1", "addrs": "h:2"}, "addrs"),
                        ({"name": "ok", "addr": "h:1", "max_tx": -1}, "max_tx"),
                        ({"name": "ok", "addr": "h:1", "insecure": "yes"}, "insecure"),
                        ({"name": "ok", "addr": "h:1", "ca": "/no/such/ca.pem"}, "ca"),
                        ({"name": "ok", "addr": "h:1", "colour": 1}, "colour"),
                        ({"name": node_id, "addr": "h:1"}, "own")):
        r = s("POST", "/clients", body)
        assert r.status == 400 and words in r.json()["message"], (body, r.text)
    assert "ok" not in {c["name"] for c in s.get("/clients").json()}
    assert s("PUT", "/clients/nope", {"sni": "x"}).status == 404
    assert s("PUT", "/clients/jp/disable", {"disabled": "no"}).status == 400
    # Users' exits: self, unknown, disabled, multi-hop, several, modes.
    assert s("PUT", "/clients/jp/disable", {"disabled": True}).status == 200
    for fields, status, words in (({"exit_via": node_id}, 400, "revisits this node"),
                                  ({"exit_via": "nope"}, 400, "not a client"),
                                  ({"exit_via": "jp"}, 400, "disabled"),
                                  ({"exit_paths": ["b/b"]}, 400, "revisits"),
                                  ({"exit_paths": [f"b/{node_id}"]}, 400, "revisits this node"),
                                  ({"exit_paths": ["b", "jp"]}, 400, "exit_mode"),
                                  ({"exit_paths": ["b", "jp"], "exit_mode": "quality"}, 400, "disabled"),
                                  ({"exit_paths": ["b/x_y"]}, 400, "'_'")):
        r = s("POST", "/users", {"username": "exitless", "password": "x", **fields})
        assert r.status == status and words in r.json()["message"], (fields, r.text)
    uid = make_user(s, "pathy", exit_paths=["b"], exit_mode="direct")
    assert s.get(f"/users/{uid}").json()["exit_via"] == "b"
    assert s("PUT", "/clients/b", {"name": "b2"}).status == 409          # pathy exits through b
    assert s("DELETE", f"/users/{uid}").status == 200
    assert s("DELETE", "/clients/jp").status == 200
    assert s("DELETE", "/clients/jp").status == 404
    # Nested discovery (tests/mesh): the flag of a client is set; the internal list needs the
    # node password; the new routes are documented.
    assert s("PUT", "/peers/b/nested", {"enabled": False}).json() == {"status": "ok"}
    assert s("PUT", "/peers/nope/nested", {"enabled": True}).status == 400
    assert a.request("GET", "/scale/api/internal/peers").status in (401, 403)
    doc = a.get("/openapi.json").json()["paths"]
    assert {"get", "post"} <= set(doc["/scale/api/clients"]) and "put" in doc["/scale/api/clients/{name}/disable"]
    assert doc["/scale/api/peers"]["get"]["security"] == [{"hy2scale": []}]
    assert "put" in doc["/scale/api/peers/{path}/nested"] and "get" in doc["/scale/api/internal/peers"]


def test_backup_restore_round_trip_with_clients(pair):
    a, _b = pair
    s = a.scale
    assert s("POST", "/clients", {"name": "kr", "addr": "127.0.0.1:7000", "password": "kr-pass"}).status == 201
    uid = make_user(s, "kim", exit_via="kr")
    saved = s.get("/backup").json()
    assert saved["version"] == 3 and {c["name"] for c in saved["clients"]} >= {"b", "kr"}
    assert next(c for c in saved["clients"] if c["name"] == "kr")["password"] == "kr-pass"
    assert s("PUT", f"/users/{uid}", {"exit_via": ""}).status == 200
    assert s("DELETE", "/clients/kr").status == 200
    r = s("POST", "/restore", saved)
    assert r.status == 200, r.text
    again = s.get("/backup").json()
    assert again["clients"] == saved["clients"] and again["users"] == saved["users"]
    assert s.get(f"/users/{uid}").json()["exit_via"] == "kr"
    # A user whose exit is not among the document's clients: refused, nothing changes.
    unchecked = {k: v for k, v in saved.items() if k != "sha256"}
    orphan = dict(unchecked, clients=[c for c in saved["clients"] if c["name"] != "kr"])
    bad_client = dict(unchecked, clients=saved["clients"] + [{"name": "x/y", "addr": "h:1"}])
    for body in (orphan, bad_client, dict(unchecked, clients="kr")):
        r = s("POST", "/restore", body)
        assert r.status == 400, r.text
    assert s.get("/backup").json()["clients"] == saved["clients"]
    # A version 1 backup (no clients) still restores and leaves the clients as they are.
    old = {k: v for k, v in unchecked.items() if k != "clients"}
    old["version"] = 1
    old["users"] = [dict(u, exit_via="", exit_paths=[]) for u in saved["users"]]
    r = s("POST", "/restore", old)
    assert r.status == 200, r.text
    assert s.get("/backup").json()["clients"] == saved["clients"]
    assert s("POST", "/restore", saved).status == 200


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                    max_leaves=12)
FIELDS = st.sampled_from(["name", "addr", "addrs", "password", "sni", "insecure", "ca", "max_tx", "max_rx",
                          "disabled", "x"])
BODIES = st.one_of(JSON, st.dictionaries(FIELDS, JSON, max_size=8))
ROUTES = [("POST", "/clients"), ("PUT", "/clients/fz"), ("PUT", "/clients/fz/disable"),
          ("PUT", "/clients/none"), ("POST", "/restore")]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES, route=st.sampled_from(ROUTES))
def test_random_json_on_the_client_routes_never_gets_a_500(pair, body, route):
    a, _b = pair
    try:
        raw = json.dumps(body, allow_nan=True)
    except (ValueError, OverflowError):
        return
    keep = {c["name"] for c in a.scale.get("/clients").json()} - {"fz"}
    if a.scale.get("/clients/fz").status == 404:
        assert a.scale("POST", "/clients", {"name": "fz", "addr": "127.0.0.1:9"}).status == 201
    before = a.scale.get("/backup").json()
    method, path = route
    r = a.request(method, "/scale/api" + path, raw.encode(),
                  headers={"Authorization": f"Bearer {a.scale.token}", "Content-Type": "application/json"})
    assert r.status < 500, (route, raw, r.text)
    assert isinstance(r.json(), dict)
    after = a.scale.get("/backup").json()
    if r.status >= 400:                                      # a refused body changed nothing
        assert [c for c in after["clients"]] == [c for c in before["clients"]]
    for c in after["clients"]:
        if c["name"] not in keep:
            assert a.scale("DELETE", f"/clients/{c['name']}").status == 200


def _pem(node) -> str:
    return (node.data_dir / "tls" / "node.crt").read_text()


def test_a_client_ca_is_pem_text_that_verifies_the_peer(pair, targets):
    """``ca`` as PEM text (issue 19): B's own certificate as the trust anchor lets A verify B
    (insecure off) and carry traffic; another certificate's PEM makes the TLS check fail, so
    the user whose exit that client is gets no stream, never a direct one."""
    from fastpath.supervisor.bootstrap import make_self_signed
    a, b = pair
    other_pem = make_self_signed(["localhost", "127.0.0.1"])[0].decode()
    for name, ca in (("bpem", _pem(b)), ("bwrong", other_pem)):
        r = a.scale("POST", "/clients", {"name": name, "addr": b.hy2, "password": "peeruser:pw-peer",
                                         "insecure": False, "ca": ca})
        assert r.status == 201, r.text
    listed = {c["name"]: c for c in a.scale.get("/clients").json()}
    assert listed["bpem"]["ca"] == _pem(b)
    make_user(a.scale, "carol", exit_via="bpem")
    make_user(a.scale, "dave", exit_via="bwrong")

    async def through(auth):
        client = simple_client(a.hy2, auth)
        await client.connect()
        try:
            return await echo(client, targets.echo, 20_000)
        except ConnectError as exc:
            return str(exc)
        finally:
            await client.close()
    assert run(through("carol:pw-carol")) is True
    refused = run(through("dave:pw-dave"))
    assert "bwrong" in refused and "certificate" in refused and "not dialing directly" in refused
    # The peer list agrees: the verified peer is up, the other never got past TLS.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        peers = {p["name"]: p for p in a.scale.get("/peers").json()}
        if peers["bpem"]["connected"]:
            break
        time.sleep(0.3)
    assert peers["bpem"]["connected"] is True and peers["bwrong"]["connected"] is False


def test_a_client_ca_path_is_no_file_existence_oracle(pair):
    """Without ``scale.caDir`` a path is refused with one answer whether the file exists
    (``/etc/passwd``) or not; PEM that holds no certificate is a 400 naming ``ca``."""
    a, _b = pair
    answers = set()
    for path in ("/etc/passwd", "/etc/no-such-file-here", "../../etc/hostname"):
        r = a.scale("POST", "/clients", {"name": "cpath", "addr": "127.0.0.1:1", "ca": path})
        assert r.status == 400, r.text
        answers.add(r.text)
    assert len(answers) == 1 and "PEM" in answers.pop()
    r = a.scale("POST", "/clients", {"name": "cpem", "addr": "127.0.0.1:1",
                                     "ca": "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"})
    assert r.status == 400 and r.json()["message"].startswith("ca: "), r.text
    assert all(c["name"] not in ("cpath", "cpem") for c in a.scale.get("/clients").json())


def test_a_client_ca_path_inside_ca_dir(tmp_path, pair):
    """With ``scale.caDir`` a path inside it is accepted (stored resolved); ``..`` out of it
    and absolute paths elsewhere get the same refusal, existing or not."""
    from fastpath.control.hy2scale.clients import parse_ca
    import falcon
    ca_dir = tmp_path / "peer-ca"
    ca_dir.mkdir()
    (ca_dir / "b.pem").write_text(_pem(pair[1]))
    (ca_dir / "junk.pem").write_text("hello")
    root = str(ca_dir.resolve())
    assert parse_ca("b.pem", root) == str(ca_dir.resolve() / "b.pem")
    assert parse_ca(str(ca_dir / "b.pem"), root) == str(ca_dir.resolve() / "b.pem")
    outside = set()
    for bad in ("../../../../etc/passwd", "/etc/passwd", "/etc/nothing-here", ".", "../peer-ca2/x"):
        with pytest.raises(falcon.HTTPError) as err:
            parse_ca(bad, root)
        outside.add(err.value.description)
    assert len(outside) == 1 and "inside scale.caDir" in outside.pop()
    for bad, words in (("missing.pem", "no such file"), ("junk.pem", "not a PEM")):
        with pytest.raises(falcon.HTTPError) as err:
            parse_ca(bad, root)
        assert words in err.value.description


def test_ca_dir_must_be_an_existing_absolute_directory(tmp_path):
    from fastpath.control.hy2scale.config import parse_scale_config
    from fastpath.config.fields import ConfigError
    assert parse_scale_config({"caDir": str(tmp_path)}).ca_dir == str(tmp_path.resolve())
    assert parse_scale_config({}).ca_dir is None
    for bad in ("relative/dir", str(tmp_path / "missing")):
        with pytest.raises(ConfigError, match="scale.caDir"):
            parse_scale_config({"caDir": bad})
