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

from fastpath.hy2.client import ConnectError, simple_client
from fastpath.worker.event_loop import run
from tests.hy2scale.conftest import SCALE, ScaleClient
from tests.hy2scale.test_exits import download_hash, make_user, settle, upload_hash, used
from tests.support.node import NodeProcess, free_udp_port

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


def scale_node(tmp, name, workers=1):
    return NodeProcess(tmp.mktemp(name), {"scale": dict(SCALE)}, workers=workers)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    with scale_node(tmp_path_factory, "node-c") as c, scale_node(tmp_path_factory, "node-b") as b, \
            scale_node(tmp_path_factory, "node-a", workers=2) as a:
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
    assert used(c.scale, c.peer_a2) == a2_0     # nothing went A → C directly


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
