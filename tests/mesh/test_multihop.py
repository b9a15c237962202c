"""Three real nodes on loopback, A → B → C (issue 16 items 2-4).

C is the exit: B dials it as C's scale user ``peer-b``; A dials B as B's user ``peer-a`` and
C directly as C's user ``peer-a2`` (a second way to C, for the path modes).  A user of A whose
exit path is ``b/c`` must reach its targets from C: the recording targets look up which
process owns the socket that connected to them (psutil) and serve only C's.
"""
from __future__ import annotations

import asyncio
import time

import psutil
import pytest

from fastpath.hy2.client.client import ConnectError, simple_client
from fastpath.worker.event_loop import run
from tests.hy2scale.conftest import SCALE, ScaleClient
from tests.hy2scale.test_exits import download_hash, make_user, settle, upload_hash, used
from tests.support.node import NodeProcess, free_tcp_port, free_udp_port

pytestmark = pytest.mark.integration

MB = 1024 * 1024


def tree_pids(node) -> set[int]:
    proc = psutil.Process(node.proc.pid)
    return {proc.pid} | {c.pid for c in proc.children(recursive=True)}


def owner_of(kind: str, port: int) -> int | None:
    """The pid whose socket has local port ``port`` on 127.0.0.1 (the source of what reached
    a target)."""
    for c in psutil.net_connections(kind=kind):
        if c.laddr and c.laddr.port == port and c.pid:
            return c.pid
    return None


class OnlyFrom:
    """TCP echo and UDP echo targets that serve only sockets of the processes in ``pids``;
    every source is recorded as (pid, allowed)."""

    def __init__(self, targets, pids_fn):
        self.seen: list[tuple[int | None, bool]] = []
        self.pids_fn = pids_fn

        async def handler(reader, writer):
            peer = writer.get_extra_info("peername")
            pid = owner_of("tcp", peer[1])
            ok = pid in self.pids_fn()
            self.seen.append((pid, ok))
            if not ok:
                writer.close()
                return
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            finally:
                writer.close()
        self.tcp = targets.tcp(handler)
        outer = self

        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                self.transport = transport

            def datagram_received(self, data, addr):
                pid = owner_of("udp", addr[1])
                ok = pid in outer.pids_fn()
                outer.seen.append((pid, ok))
                if ok:
                    self.transport.sendto(data, addr)

        async def start():
            transport, _ = await targets.loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
            targets._servers.append(transport)
            return transport.get_extra_info("sockname")[1]
        self.udp = targets.call(start())


def scale_node(tmp, name, workers=1, **config):
    return NodeProcess(tmp.mktemp(name), {"scale": dict(SCALE), **config}, workers=workers)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    socks = free_tcp_port()
    with scale_node(tmp_path_factory, "node-c") as c, scale_node(tmp_path_factory, "node-b") as b, \
            scale_node(tmp_path_factory, "node-a", workers=2, inbounds=[
                {"type": "socks", "listen": f"127.0.0.1:{socks}", "tag": "socks-in"}]) as a:
        a.socks = socks
        for n in (a, b, c):
            n.hy2 = n.config["listen"]
            n.scale = ScaleClient(n)
            n.node_id = n.scale.get("/node").json()["node_id"]
        c.peer_b = make_user(c.scale, "peer-b")
        c.peer_a2 = make_user(c.scale, "peer-a2")
        b.peer_a = make_user(b.scale, "peer-a")
        for owner, name, target, secret in ((b, "c", c, "peer-b:pw-peer-b"), (a, "b", b, "peer-a:pw-peer-a"),
                                            (a, "c", c, "peer-a2:pw-peer-a2")):
            r = owner.scale("POST", "/clients", {"name": name, "addr": target.hy2, "password": secret,
                                                 "insecure": True})
            assert r.status == 201, r.text
        yield a, b, c


async def tcp_echo(client, port, n=200_000) -> bytes:
    reader, writer = await client.open_tcp(f"127.0.0.1:{port}")
    data = bytes(range(256)) * (n // 256)
    writer.write(data)
    got = await asyncio.wait_for(reader.readexactly(len(data)), 15)
    writer.close()
    return got == data


async def udp_echo(client, port, count=20) -> int:
    udp = await client.udp_session()
    back = 0
    for i in range(count):
        udp.send(f"127.0.0.1:{port}", b"datagram %d " % i + bytes(1000))
        try:
            _addr, data = await asyncio.wait_for(udp.recv(), 3)
        except TimeoutError:
            continue
        back += data.startswith(b"datagram %d " % i)
    udp.close()
    return back


def test_b_c_path_reaches_a_target_only_c_may_dial_tcp_and_udp(mesh, targets):
    a, b, c = mesh
    only_c = OnlyFrom(targets, lambda: tree_pids(c))
    alice = make_user(a.scale, "alice", exit_paths=["b/c"])
    view = a.scale.get(f"/users/{alice}").json()
    assert view["exit_paths"] == ["b/c"] and view["exit_via"] == "b/c"
    b0, c0, alice0 = used(b.scale, b.peer_a), used(c.scale, c.peer_b), used(a.scale, alice)
    a2_0 = used(c.scale, c.peer_a2)

    async def as_alice():
        client = simple_client(a.hy2, "alice:pw-alice")
        await client.connect()
        assert await tcp_echo(client, only_c.tcp)
        assert await upload_hash(client, targets.sink, 3 * MB)
        assert await download_hash(client, targets.source, 2 * MB)
        got = await udp_echo(client, only_c.udp)
        await client.close()
        return got
    udp_back = run(as_alice())
    assert udp_back >= 18                      # loopback: nearly all 20 come back
    assert only_c.seen and all(ok for _pid, ok in only_c.seen), only_c.seen
    moved_alice = settle(lambda: used(a.scale, alice)) - alice0
    moved_b = settle(lambda: used(b.scale, b.peer_a)) - b0
    moved_c = settle(lambda: used(c.scale, c.peer_b)) - c0
    assert moved_alice >= 5 * MB + 400_000
    # Each hop counts the peer user it serves: B for A's peer user, C for B's.  The UDP frames
    # on the relay stream carry a few bytes of header each (address and lengths), so B and C
    # count up to that much more than A counts payload.
    for moved in (moved_b, moved_c):
        assert moved_alice <= moved <= moved_alice + 40 * 64, (moved_alice, moved_b, moved_c)
    # Nothing of alice's went A → C directly: at most the node-info request A's nested
    # discovery makes once per connection (well under a kilobyte).
    assert used(c.scale, c.peer_a2) - a2_0 < 1000


def test_a_user_with_a_direct_exit_is_not_served_by_the_target(mesh, targets):
    """The recording target really refuses others: a user exiting at A is turned away."""
    a, _b, c = mesh
    only_c = OnlyFrom(targets, lambda: tree_pids(c))
    make_user(a.scale, "dan")

    async def main():
        client = simple_client(a.hy2, "dan:pw-dan")
        await client.connect()
        reader, writer = await client.open_tcp(f"127.0.0.1:{only_c.tcp}")
        writer.write(b"hello")
        got = await asyncio.wait_for(reader.read(10), 5)
        await client.close()
        return got
    assert run(main()) == b""
    assert only_c.seen and not only_c.seen[0][1] and only_c.seen[0][0] in tree_pids(a)


def test_paths_that_revisit_a_node_are_refused(mesh, targets):
    a, b, c = mesh
    # Written: a node twice, or this node itself, is a 400 and nothing is stored.
    for paths in (["b/b"], ["b/c/b"], [f"b/{a.node_id}"], ["b/c", "b/c"]):
        r = a.scale("POST", "/users", {"username": "loopy", "password": "x", "exit_paths": paths,
                                       "exit_mode": "quality"})
        assert r.status == 400, (paths, r.text)
        assert "revisit" in r.text or "twice" in r.text, r.text
    assert not any(u["username"] == "loopy" for u in a.scale.get("/users").json())
    # At run time: C gets a client "back" that is A under another name; the path b/c/back
    # comes back to A, which refuses it there (its id is in the request's visited list).
    make_user(a.scale, "peer-c")
    r = c.scale("POST", "/clients", {"name": "back", "addr": a.hy2, "password": "peer-c:pw-peer-c",
                                     "insecure": True})
    assert r.status == 201, r.text
    recorder = OnlyFrom(targets, lambda: tree_pids(a) | tree_pids(b) | tree_pids(c))
    make_user(a.scale, "ring", exit_paths=["b/c/back"])

    async def main():
        client = simple_client(a.hy2, "ring:pw-ring")
        await client.connect()
        with pytest.raises(ConnectError) as info:
            await client.open_tcp(f"127.0.0.1:{recorder.tcp}")
        await client.close()
        return str(info.value)
    message = run(main())
    assert f"revisits node {a.node_id}" in message, message
    assert recorder.seen == []                 # nobody dialed the target
    assert c.scale("DELETE", "/clients/back").status == 200


def test_a_broken_hop_fails_the_stream_with_a_message(mesh, targets):
    a, b, _c = mesh
    recorder = OnlyFrom(targets, lambda: tree_pids(a) | tree_pids(b))
    r = b.scale("POST", "/clients", {"name": "gone", "addr": f"127.0.0.1:{free_udp_port()}",
                                     "password": "x", "insecure": True})
    assert r.status == 201, r.text
    make_user(a.scale, "broke", exit_paths=["b/gone"])
    make_user(a.scale, "nowhere", exit_paths=["b/nosuch"])

    async def refused(auth):
        client = simple_client(a.hy2, auth)
        await client.connect()
        with pytest.raises(ConnectError) as info:
            await client.open_tcp(f"127.0.0.1:{recorder.tcp}")
        await client.close()
        return str(info.value)
    assert "unreachable" in run(refused("broke:pw-broke"))
    assert "not a configured peer" in run(refused("nowhere:pw-nowhere"))
    assert recorder.seen == []                 # never a direct exit, at A or at B
    assert b.scale("DELETE", "/clients/gone").status == 200


# -- nested discovery -----------------------------------------------------------------------
def wait_for(read, ok, timeout=25.0, step=0.3):
    deadline = time.monotonic() + timeout
    last = read()
    while not ok(last) and time.monotonic() < deadline:
        time.sleep(step)
        last = read()
    return last


def child_names(entry) -> list[str]:
    return [c["name"] for c in entry.get("children") or []]


def test_nested_discovery_shows_c_under_b_with_limits_and_no_cycles(mesh):
    a, b, c = mesh
    # C has an offline client d; B has a client that is A again (a cycle A → B → A).
    assert c.scale("POST", "/clients", {"name": "d", "addr": f"127.0.0.1:{free_udp_port()}",
                                        "password": "x", "insecure": True}).status == 201
    make_user(a.scale, "peer-b2")
    assert b.scale("POST", "/clients", {"name": "a-again", "addr": a.hy2, "password": "peer-b2:pw-peer-b2",
                                        "insecure": True}).status == 201

    def b_entry():
        return next(p for p in a.scale.get("/topology").json() if p["name"] == "b")
    assert b_entry()["nested"] is False and child_names(b_entry()) == []
    assert a.scale("PUT", "/peers/b/nested", {"enabled": True}).json() == {"status": "ok"}
    # a-again is A itself: dropped as soon as B has learnt its node id (B asks each client
    # once per connection), and from then on never shown again.
    entry = wait_for(b_entry, lambda e: child_names(e) == ["c"])
    assert entry["nested"] is True and child_names(entry) == ["c"], entry
    for _ in range(12):                        # four nested refreshes of A
        time.sleep(1)
        assert child_names(b_entry()) == ["c"]
    entry = b_entry()
    kid = entry["children"][0]
    assert kid["via"] == "b" and kid["connected"] is True and kid["direction"] == "outbound"
    assert kid["latency_ms"] >= entry["latency_ms"] >= 0
    assert kid["children"] == []               # B does not publish below c until it marks c nested
    # Deeper: B marks c nested (so it publishes d), A marks b/c nested (so it shows it).
    assert b.scale("PUT", "/peers/c/nested", {"enabled": True}).status == 200
    assert a.scale("PUT", "/peers/b/c/nested", {"enabled": True}).status == 200

    def grandkids():
        e = b_entry()
        return [g["name"] for k in e.get("children") or [] for g in k.get("children") or []]
    assert "d" in wait_for(grandkids, lambda g: "d" in g)
    d = b_entry()["children"][0]["children"][0]
    assert d["connected"] is False and d["via"] == "c"
    # max_nested_depth 1: only the first level below b stays.
    ui = a.scale.get("/settings/ui").json()
    r = a.scale("PUT", "/settings/ui", {**ui, "max_nested_depth": 1})
    assert r.status == 200 and "max_nested_depth" in r.json()["applied"], r.text
    assert wait_for(grandkids, lambda g: g == []) == []
    assert child_names(b_entry()) == ["c"]
    assert a.scale("PUT", "/settings/ui", {**ui, "max_nested_depth": 5}).status == 200
    # A nested flag for a node the topology does not show, or a bad path: refused.
    assert a.scale("PUT", "/peers/b/zz/nested", {"enabled": True}).status == 404
    assert a.scale("PUT", "/peers/nosuch/nested", {"enabled": True}).status == 400
    assert a.scale("PUT", "/peers/b/b/nested", {"enabled": True}).status == 400
    assert a.scale("PUT", "/peers/b/nested", {"enabled": "yes"}).status == 400
    # The internal list, as other nodes read it: behind B's node password.
    assert b.scale.get("/peers/c/peers").status == 200
    r = b.request("GET", "/scale/api/internal/peers")
    assert r.status == 403                       # no node password set yet
    assert b.scale("PUT", "/node", {"server": {"password": "node-b-secret"}}).status == 200
    assert b.request("GET", "/scale/api/internal/peers").status == 401
    assert b.request("GET", "/scale/api/internal/peers",
                     headers={"Authorization": "Bearer wrong"}).status == 401
    r = b.request("GET", "/scale/api/internal/peers", headers={"Authorization": "Bearer node-b-secret"})
    assert r.status == 200, r.text
    listed = {p["name"]: p for p in r.json()}
    assert listed["c"]["connected"] is True and "d" in child_names(listed["c"])
    assert listed["a-again"].get("node_id") == a.node_id      # how A knows to drop it
    assert b.scale("DELETE", "/clients/a-again").status == 200
    assert c.scale("DELETE", "/clients/d").status == 200


# -- exit modes -----------------------------------------------------------------------------
def paths_view(a) -> dict:
    """Per path, the figures of the worker that probed it last (both workers probe)."""
    out = {}
    for w in a.scale.get("/diag/paths").json()["workers"]:
        for p, st in w["paths"].items():
            out.setdefault(p, []).append(st)
    return out


def all_healthy(view, paths) -> bool:
    return all(p in view and all(s["healthy"] and s["latency_ms"] is not None for s in view[p]) for p in paths)


def via_b(a, b, user, only_c, streams=1, n=100_000) -> int:
    """Streams of ``user`` that went through B (B's counter of A's peer user moved)."""
    before = used(b.scale, b.peer_a)

    async def main():
        client = simple_client(a.hy2, f"{user}:pw-{user}")
        await client.connect()
        for _ in range(streams):
            assert await tcp_echo(client, only_c.tcp, n)
        await client.close()
    run(main())
    return round((settle(lambda: used(b.scale, b.peer_a)) - before) / (2 * n))


def test_quality_takes_the_fastest_healthy_path_and_switches_when_a_hop_dies(mesh, targets):
    a, b, c = mesh
    only_c = OnlyFrom(targets, lambda: tree_pids(c))
    make_user(a.scale, "qual", exit_paths=["b/c", "c"], exit_mode="quality")
    view = wait_for(lambda: paths_view(a), lambda v: all_healthy(v, ["b/c", "c"]))
    assert all_healthy(view, ["b/c", "c"]), view
    first = via_b(a, b, "qual", only_c, streams=3)
    assert first in (0, 3), first                       # one path for all three
    chosen = "b/c" if first == 3 else "c"
    # Kill a hop of the chosen path: B's client c (b/c) or A's own client c (c).
    owner = b if chosen == "b/c" else a
    assert owner.scale("PUT", "/clients/c/disable", {"disabled": True}).status == 200
    try:
        view = wait_for(lambda: paths_view(a), lambda v: not any(s["healthy"] for s in v[chosen]))
        assert not any(s["healthy"] for s in view[chosen]), view
        assert via_b(a, b, "qual", only_c, streams=3) == (0 if chosen == "b/c" else 3)
        assert only_c.seen and all(ok for _p, ok in only_c.seen)
    finally:
        assert owner.scale("PUT", "/clients/c/disable", {"disabled": False}).status == 200
    wait_for(lambda: paths_view(a), lambda v: all_healthy(v, ["b/c", "c"]))


def test_aggregate_spreads_a_users_streams_over_the_healthy_paths(mesh, targets):
    a, b, c = mesh
    only_c = OnlyFrom(targets, lambda: tree_pids(c))
    make_user(a.scale, "aggr", exit_paths=["b/c", "c"], exit_mode="aggregate")
    assert wait_for(lambda: paths_view(a), lambda v: all_healthy(v, ["b/c", "c"])) is not None
    a2_before = used(c.scale, c.peer_a2)
    through_b = via_b(a, b, "aggr", only_c, streams=10)
    direct = round((settle(lambda: used(c.scale, c.peer_a2)) - a2_before) / 200_000)
    assert through_b + direct == 10 and through_b >= 3 and direct >= 3, (through_b, direct)
    # Aggregate needs one exit node at the end of every path.
    r = a.scale("POST", "/users", {"username": "agg2", "password": "x", "exit_paths": ["b/c", "b"],
                                   "exit_mode": "aggregate"})
    assert r.status == 400 and "same exit node" in r.text


# -- rules ----------------------------------------------------------------------------------
def socks_echo(port, user, password, target_host, target_port, payload=b"ping through socks") -> bytes:
    import socket
    import struct
    with socket.create_connection(("127.0.0.1", port), 10) as s:
        s.sendall(b"\x05\x01\x02")
        assert s.recv(2) == b"\x05\x02"
        s.sendall(b"\x01" + bytes([len(user)]) + user.encode() + bytes([len(password)]) + password.encode())
        assert s.recv(2) == b"\x01\x00"
        host = target_host.encode()
        s.sendall(b"\x05\x01\x00\x03" + bytes([len(host)]) + host + struct.pack(">H", target_port))
        rep = s.recv(10)
        if rep[:2] != b"\x05\x00":
            return b"refused"
        s.sendall(payload)
        got = b""
        s.settimeout(5)
        try:
            while len(got) < len(payload):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except TimeoutError:
            pass
        return got


def test_rules_route_by_cidr_and_domain_for_hysteria_and_the_socks_inbound(mesh, targets):
    a, b, c = mesh
    only_c = OnlyFrom(targets, lambda: tree_pids(c))
    make_user(a.scale, "ruled")                           # no exit of its own

    async def echo_to(host):
        client = simple_client(a.hy2, "ruled:pw-ruled")
        await client.connect()
        try:
            reader, writer = await client.open_tcp(f"{host}:{only_c.tcp}")
            writer.write(b"hello rule")
            got = await asyncio.wait_for(reader.read(100), 5)
        finally:
            await client.close()
        return got
    assert run(echo_to("127.0.0.1")) == b""              # exits at A: the target refuses A
    assert a.scale.get("/rules").json() == {"available": True, "rules": []}
    r = a.scale("POST", "/rules", {"id": "lo", "name": "loopback via C", "type": "ip",
                                   "targets": ["127.0.0.0/8", "10.0.0.1-10.0.0.9"],
                                   "exit_paths": ["b/c"], "enabled": True})
    assert r.status == 200 and r.json()["status"] == "ok", r.text
    rules = a.scale.get("/rules").json()["rules"]
    assert rules[0]["exit_via"] == "b/c" and rules[0]["targets"] == ["127.0.0.0/8", "10.0.0.1-10.0.0.9"]
    time.sleep(0.3)
    assert run(echo_to("127.0.0.1")) == b"hello rule"      # the rule sends it along b/c
    assert socks_echo(a.socks, "ruled", "pw-ruled", "127.0.0.1", only_c.tcp) == b"ping through socks"
    # Domain rules match the requested name (suffix on label boundaries), not the address.
    assert a.scale("PUT", "/rules/lo/toggle", {"enabled": False}).status == 200
    time.sleep(0.3)
    assert run(echo_to("127.0.0.1")) == b""
    r = a.scale("POST", "/rules", {"id": "dom", "type": "domain", "targets": ["localhost"],
                                   "exit_via": "b/c", "enabled": True})
    assert r.status == 200, r.text
    time.sleep(0.3)
    assert run(echo_to("localhost")) == b"hello rule"
    assert run(echo_to("127.0.0.1")) == b""
    assert socks_echo(a.socks, "ruled", "pw-ruled", "localhost", only_c.tcp, b"named") == b"named"
    assert socks_echo(a.socks, "ruled", "pw-ruled", "127.0.0.1", only_c.tcp, b"plain") == b""
    for rid in ("lo", "dom"):
        assert a.scale("DELETE", f"/rules/{rid}").json() == {"status": "ok"}
    assert a.scale("DELETE", "/rules/dom").status == 404
    assert a.scale.get("/rules").json()["rules"] == []


def test_routes_of_several_nodes_that_loop_are_refused_where_they_loop(mesh, targets):
    """A → B → C along alice2's path, then C's own rule for the target sends it to its client
    "back", which is A: the visited ids travel on with C's route, so A refuses the stream
    instead of relaying it round again."""
    a, b, c = mesh
    recorder = OnlyFrom(targets, lambda: set())          # nobody may reach it
    make_user(a.scale, "peer-c2")
    assert c.scale("POST", "/clients", {"name": "back2", "addr": a.hy2, "password": "peer-c2:pw-peer-c2",
                                        "insecure": True}).status == 201
    assert c.scale("POST", "/rules", {"id": "loop", "type": "ip", "targets": ["127.0.0.1"],
                                      "exit_via": "back2", "enabled": True}).status == 200
    make_user(a.scale, "alice2", exit_paths=["b/c"])

    async def attempt():
        client = simple_client(a.hy2, "alice2:pw-alice2")
        await client.connect()
        try:
            reader, writer = await client.open_tcp(f"127.0.0.1:{recorder.tcp}")
        except ConnectError as exc:
            return str(exc)
        finally:
            await client.close()
        return "opened"
    try:
        # C learns that "back2" is a mesh node from its node-info answer (once per connection,
        # within a nested refresh); until then its one-hop request is plain.
        message = wait_for(lambda: run(attempt()), lambda m: "revisits" in m, timeout=20, step=0.5)
        assert f"revisits node {a.node_id}" in message, message
    finally:
        assert c.scale("DELETE", "/rules/loop").status == 200
        assert c.scale("DELETE", "/clients/back2").status == 200


# -- the proxy inbounds along a path, and inbound peers -------------------------------------
async def socks_open(port, user, password, host, target_port):
    import struct
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"\x05\x01\x02")
    assert await reader.readexactly(2) == b"\x05\x02"
    writer.write(b"\x01" + bytes([len(user)]) + user.encode() + bytes([len(password)]) + password.encode())
    assert await reader.readexactly(2) == b"\x01\x00"
    name = host.encode()
    writer.write(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack(">H", target_port))
    rep = await reader.readexactly(4)
    if rep[1] != 0:
        writer.close()
        return None
    await reader.readexactly({1: 6, 4: 18}[rep[3]])
    return reader, writer


async def socks_echo_sha256(port, user, password, target_port, n=3 * MB) -> tuple[bool, bool]:
    """Send ``n`` bytes through the SOCKS5 proxy to the echo target while reading what comes
    back: (the SHA-256 of what came back is that of what was sent, the proxy connected)."""
    import hashlib
    opened = await socks_open(port, user, password, "127.0.0.1", target_port)
    if opened is None:
        return False, False
    reader, writer = opened
    sent, back = hashlib.sha256(), hashlib.sha256()
    chunk = bytes(range(256)) * 256

    async def send():
        for i in range(n // len(chunk)):
            piece = chunk[i % 256:] + chunk[:i % 256]
            sent.update(piece)
            writer.write(piece)
            await writer.drain()
    task = asyncio.ensure_future(send())
    got = 0
    while got < n:
        data = await asyncio.wait_for(reader.read(1 << 20), 15)
        if not data:
            break
        back.update(data)
        got += len(data)
    await task
    writer.close()
    return got == n and sent.digest() == back.digest(), True


def socks_udp_echo(port, user, password, target_port, count=20) -> int:
    """Datagrams to the UDP echo target through a SOCKS5 UDP ASSOCIATE; how many came back."""
    import socket
    import struct
    with socket.create_connection(("127.0.0.1", port), 10) as s, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        s.sendall(b"\x05\x01\x02")
        assert s.recv(2) == b"\x05\x02"
        s.sendall(b"\x01" + bytes([len(user)]) + user.encode() + bytes([len(password)]) + password.encode())
        assert s.recv(2) == b"\x01\x00"
        u.bind(("127.0.0.1", 0))
        s.sendall(b"\x05\x03\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", u.getsockname()[1]))
        rep = s.recv(10)
        assert rep[:2] == b"\x05\x00" and rep[3] == 1, rep
        relay = (socket.inet_ntoa(rep[4:8]), struct.unpack(">H", rep[8:10])[0])
        head = b"\x00\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", target_port)
        u.settimeout(3)
        back = 0
        for i in range(count):
            u.sendto(head + b"datagram %d " % i + bytes(1000), relay)
            try:
                data = u.recv(65536)
            except TimeoutError:
                continue
            back += data[10:].startswith(b"datagram %d " % i)
        return back


def test_a_socks5_proxy_with_exit_via_b_c_reaches_a_target_only_c_may_dial(mesh, targets):
    """``/api/proxies`` with ``exit_via: "b/c"``: the proxy's streams go A → B → C through
    the one egress, as a Hysteria 2 user's do, and each hop counts the peer user it serves."""
    a, b, c = mesh
    only_c = OnlyFrom(targets, lambda: tree_pids(c))
    sox = make_user(a.scale, "sox")                        # no exit of its own: the listener's
    port = free_tcp_port()
    r = a.scale("POST", "/proxies", {"id": "via-bc", "protocol": "socks5", "listen": f"127.0.0.1:{port}",
                                     "enabled": True, "exit_via": "b/c"})
    assert r.status == 200, r.text
    view = a.scale.get("/proxies/via-bc").json()
    assert view["exit_via"] == "b/c" and view["exit_paths"] == ["b/c"] and view["exit_mode"] == ""
    b0, c0, sox0 = used(b.scale, b.peer_a), used(c.scale, c.peer_b), used(a.scale, sox)
    a2_0 = used(c.scale, c.peer_a2)
    try:
        same, opened = run(socks_echo_sha256(port, "sox", "pw-sox", only_c.tcp))
        assert opened and same
        assert only_c.seen and all(ok for _pid, ok in only_c.seen), only_c.seen
        moved = settle(lambda: used(a.scale, sox)) - sox0
        assert moved >= 6 * MB
        for hop in (settle(lambda: used(b.scale, b.peer_a)) - b0, settle(lambda: used(c.scale, c.peer_b)) - c0):
            assert moved <= hop <= moved + 1000, (moved, hop)
        assert used(c.scale, c.peer_a2) - a2_0 < 1000          # not A → C directly
        # The same listener with two paths and the quality mode: still only from C.
        r = a.scale("PUT", "/proxies/via-bc", {"exit_paths": ["b/c", "c"], "exit_mode": "quality"})
        assert r.status == 200, r.text
        assert a.scale.get("/proxies/via-bc").json()["exit_mode"] == "quality"
        wait_for(lambda: paths_view(a), lambda v: all_healthy(v, ["b/c", "c"]))
        only_c.seen.clear()
        same, opened = run(socks_echo_sha256(port, "sox", "pw-sox", only_c.tcp, n=MB))
        assert opened and same and only_c.seen and all(ok for _pid, ok in only_c.seen), only_c.seen
        # Paths the node refuses for a user are refused for a listener too, and nothing changes.
        before = a.scale.get("/proxies").json()
        for body, word in (({"exit_via": "b/b"}, "revisits"), ({"exit_via": f"b/{a.node_id}"}, "revisits"),
                           ({"exit_paths": ["b/c", "c"], "exit_mode": ""}, "exit_mode"),
                           ({"exit_paths": ["b/c", "b"], "exit_mode": "aggregate"}, "same exit node"),
                           ({"exit_via": "nosuch/c"}, "not a client")):
            r = a.scale("PUT", "/proxies/via-bc", body)
            assert r.status == 400 and word in r.text, (body, r.text)
        assert a.scale.get("/proxies").json() == before
        # UDP through the listener (SOCKS5 UDP ASSOCIATE) takes the same path.
        only_c.seen.clear()
        assert socks_udp_echo(port, "sox", "pw-sox", only_c.udp) >= 18
        assert only_c.seen and all(ok for _pid, ok in only_c.seen), only_c.seen
        # A client a listener exits through is not deleted from under it.
        assert a.scale("POST", "/clients", {"name": "spare", "addr": f"127.0.0.1:{free_udp_port()}",
                                            "password": "x", "insecure": True}).status == 201
        assert a.scale("PUT", "/proxies/via-bc", {"exit_via": "spare/c"}).status == 200
        r = a.scale("DELETE", "/clients/spare")
        assert r.status == 409 and "proxy via-bc" in r.text, r.text
    finally:
        assert a.scale("DELETE", "/proxies/via-bc").status == 200
        a.scale("DELETE", "/clients/spare")


def test_a_node_dialing_another_is_its_inbound_child_and_exit_client(mesh):
    """B sees A (which dials it as user peer-a) among its topology's children and counts it in
    ``stats.exit_clients``; C sees both A and B; a peer whose connection closes goes away."""
    a, b, c = mesh
    names = {n: n.scale.get("/node").json()["name"] for n in (a, b)}

    def kids(node):
        me = node.scale.get("/topology").json()[0]
        assert me["is_self"] and me["direction"] == "local"
        return {k["node_id"]: k for k in me["children"]}
    got = wait_for(lambda: kids(c), lambda k: set(k) == {a.node_id, b.node_id})
    assert set(got) == {a.node_id, b.node_id}, got
    got = wait_for(lambda: kids(b), lambda k: a.node_id in k)
    assert set(got) == {a.node_id}, got
    child = got[a.node_id]
    assert child["name"] == names[a] and child["direction"] == "inbound" and child["via"] == b.node_id
    assert child["connected"] is True and child["exit_node"] is False and child["children"] == []
    assert isinstance(child["latency_ms"], int) and child["latency_ms"] >= 0
    assert isinstance(child["tx_rate"], int) and isinstance(child["rx_rate"], int)
    assert b.scale.get("/stats").json()["exit_clients"] == 1
    listed = [p for p in b.scale.get("/peers").json() if p["direction"] == "inbound"]
    assert [(p["node_id"], p["name"], p["connected"]) for p in listed] == [(a.node_id, names[a], True)]
    assert c.scale.get("/stats").json()["exit_clients"] == 2
    assert kids(a) == {}                                  # nobody dials A
    assert a.scale.get("/stats").json()["exit_clients"] == 0
    # A stops dialing C: its connection closes and C lists only B.
    assert a.scale("PUT", "/clients/c/disable", {"disabled": True}).status == 200
    try:
        got = wait_for(lambda: kids(c), lambda k: set(k) == {b.node_id})
        assert set(got) == {b.node_id}, got
        assert c.scale.get("/stats").json()["exit_clients"] == 1
    finally:
        assert a.scale("PUT", "/clients/c/disable", {"disabled": False}).status == 200
    got = wait_for(lambda: kids(c), lambda k: a.node_id in k)
    assert a.node_id in got
