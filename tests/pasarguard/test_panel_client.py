"""A real node driven by the PasarGuard panel's own client, over REST and over gRPC.

Two users; a Hysteria 2 client (ours) moves a known number of bytes as one of them; the panel
reads exactly those bytes (then zero), sees the connection online with its IP, syncs a user
set without that user (its connection closes, it is refused after), and streams the node's
log lines.  A wrong key gets the status the panel expects.
"""
from __future__ import annotations

import asyncio
import uuid

import pytest

from fastpath.hy2.client.client import AuthError, Hy2Client
from fastpath.worker.event_loop import run
from tests.pasarguard.panel_client import DriverError

pytestmark = [pytest.mark.integration]

UP, DOWN = 300_007, 1_200_011
ALICE = {"email": "1001.alice", "auth": "alice-" + uuid.uuid4().hex, "inbounds": ["hysteria2"]}
BOB = {"email": "1002.bob", "auth": "bob-" + uuid.uuid4().hex, "inbounds": ["hysteria2"]}


def rows(stats):
    return sorted((name, kind, link, value) for name, kind, link, value in stats)


async def call(panel, op, **args):
    return await asyncio.to_thread(panel.call, op, **args)


class Target:
    """A TCP server on loopback that reads UP bytes, answers DOWN bytes and keeps the
    connection open until the proxy closes it."""

    def __init__(self):
        self.closed = asyncio.Event()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader, writer):
        try:
            await reader.readexactly(UP)
            writer.write(b"d" * DOWN)
            await writer.drain()
            await reader.read()          # until the proxy side goes away
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.closed.set()
            writer.close()

    def close(self):
        self.server.close()


async def closed_by_node(target: Target, reader, client) -> None:
    """The node closed the user's proxied connection (the target sees it end) and its whole
    Hysteria 2 connection (the client sees it end)."""
    await asyncio.wait_for(target.closed.wait(), 5)
    try:
        assert await asyncio.wait_for(reader.read(), 5) == b""
    except ConnectionError:
        pass                             # the QUIC connection was closed under the stream
    assert not client.connected


@pytest.mark.parametrize("mode", ["rest", "grpc"])
def test_panel_drives_the_node(face_node, panel, mode):
    alice = dict(ALICE, auth=f"{ALICE['auth']}-{mode}")
    bob = dict(BOB, auth=f"{BOB['auth']}-{mode}")

    async def scenario():
        info = await call(panel, "start", node=mode, users=[alice, bob])
        assert info["started"] and info["node_version"] and info["core_version"]
        await call(panel, "stats", node=mode, type="UsersStat", reset=True)
        await call(panel, "stats", node=mode, type="Outbounds", reset=True)

        target = Target()
        port = await target.start()
        client = Hy2Client(server_host="127.0.0.1", server_port=face_node.hy2_port, auth=alice["auth"],
                           ca=str(face_node.ca_path), sni="localhost")
        try:
            reader, writer = await client.open_tcp(f"127.0.0.1:{port}")
            writer.write(b"u" * UP)
            await writer.drain()
            assert len(await reader.readexactly(DOWN)) == DOWN

            # Exactly those bytes, by direction, then zero.
            stats = await call(panel, "stats", node=mode, type="UsersStat", reset=True)
            assert rows(stats) == [(alice["email"], "downlink", "traffic", DOWN),
                                   (alice["email"], "uplink", "traffic", UP)]
            assert await call(panel, "stats", node=mode, type="UsersStat", reset=True) == []
            one = await call(panel, "stats", node=mode, type="UserStat", name=alice["email"], reset=False)
            assert rows(one) == [(alice["email"], "downlink", "traffic", 0),
                                 (alice["email"], "uplink", "traffic", 0)]
            outbound = await call(panel, "stats", node=mode, type="Outbounds", reset=True)
            assert rows(outbound) == [("direct", "downlink", "traffic", DOWN), ("direct", "uplink", "traffic", UP)]

            # Online: the connection, from loopback.
            assert await call(panel, "online", node=mode, email=alice["email"]) == [alice["email"], 1]
            assert await call(panel, "online", node=mode, email=bob["email"]) == [bob["email"], 0]
            ips = await call(panel, "online_ip", node=mode, email=alice["email"])
            assert list(ips["ips"]) == ["127.0.0.1"]

            # A user set without alice: her connection closes before the call returns ...
            await call(panel, "sync_users", node=mode, users=[bob])
            await closed_by_node(target, reader, client)
            # ... and she is refused.
            again = Hy2Client(server_host="127.0.0.1", server_port=face_node.hy2_port, auth=alice["auth"],
                              ca=str(face_node.ca_path), sni="localhost")
            with pytest.raises(AuthError):
                await again.connect()
            await again.close()
            err = await asyncio.to_thread(panel.error, "online", node=mode, email=alice["email"])
            assert err.code == 404

            # SyncUser: back as a delta, connected again, then removed by an empty inbound list.
            assert await call(panel, "sync_user_each", node=mode, users=[alice]) == []
            await client.close()
            client = Hy2Client(server_host="127.0.0.1", server_port=face_node.hy2_port, auth=alice["auth"],
                               ca=str(face_node.ca_path), sni="localhost")
            target.closed.clear()
            reader, writer = await client.open_tcp(f"127.0.0.1:{port}")
            writer.write(b"u" * UP)
            await writer.drain()
            await reader.readexactly(DOWN)
            assert await call(panel, "online", node=mode, email=alice["email"]) == [alice["email"], 1]
            assert await call(panel, "sync_user_each", node=mode, users=[dict(alice, inbounds=[])]) == []
            await closed_by_node(target, reader, client)
            stats = await call(panel, "stats", node=mode, type="UsersStat", reset=True)
            assert rows(stats) == [(alice["email"], "downlink", "traffic", DOWN),
                                   (alice["email"], "uplink", "traffic", UP)]   # her last bytes, once
            assert await call(panel, "stats", node=mode, type="UsersStat", reset=True) == []
        finally:
            await client.close()
            target.close()

        # Every process of the node logs there; read the history until the face's own line.
        lines = await call(panel, "logs", node=mode, count=500, until="user set replaced by the panel",
                           timeout=10)
        assert lines and all(isinstance(line, str) and line for line in lines)
        assert "user set replaced by the panel" in lines[-1]
        assert any(" worker[0] " in line for line in lines) or len(lines) >= 100

    run(scenario())


@pytest.mark.parametrize("mode", ["rest", "grpc"])
def test_panel_api_surface(face_node, panel, mode):
    """Everything else the panel's client calls answers in the shapes it expects."""
    panel.call("start", node=mode, users=[ALICE, BOB], keep_alive=60)
    info = panel.call("info", node=mode)
    assert info["started"] is True and "keep_alive 60s" in info["core_version"]
    assert info["node_version"].split("+")[0] == "0.2.0"

    system = panel.call("system_stats", node=mode)
    assert int(system["mem_total"]) > 0 and int(system["cpu_cores"]) >= 1 and int(system["uptime"]) > 0
    backend = panel.call("backend_stats", node=mode)
    assert int(backend["num_goroutine"]) > 0 and int(backend["alloc"]) > 0 and int(backend["uptime"]) >= 0
    latency = panel.call("latency", node=mode)
    assert latency["latencies"][0]["name"] == "direct" and latency["latencies"][0]["alive"]
    inbound = panel.call("stats", node=mode, type="Inbounds", reset=False)
    assert sorted(r[:3] for r in inbound) == [["hysteria2", "downlink", "traffic"],
                                              ["hysteria2", "uplink", "traffic"]]
    assert panel.error("stats", node=mode, type="Outbound", name="blocked").code == 404
    assert panel.error("stats", node=mode, type="UserStat", name="nobody").code == 404

    # Deltas: chunked (what this node's version gets) and one by one (older nodes).
    carol = {"email": "1003.carol", "auth": f"carol-{mode}", "inbounds": ["hysteria2"]}
    result = panel.call("sync_users_chunked", node=mode, users=[carol, dict(BOB, inbounds=[])], chunk_size=1)
    assert result["failed"] == []
    store = face_node.store()
    assert {u.id for u in store.list_users(source="pasarguard")} == {ALICE["email"], carol["email"]}
    assert panel.call("sync_user_each", node=mode, users=[BOB, dict(carol, inbounds=[])]) == []
    assert {u.id for u in store.list_users(source="pasarguard")} == {ALICE["email"], BOB["email"]}

    # A user the node refuses (its secret belongs to another user of the node) is isolated
    # by the client; the rest of the batch is delivered.
    from fastpath.store import User
    store.create_user(User(id=f"native-{mode}", auth_secret=f"native-secret-{mode}", source="native"))
    try:
        bad = {"email": "1004.dan", "auth": f"native-secret-{mode}", "inbounds": ["hysteria2"]}
        result = panel.call("sync_users_chunked", node=mode, users=[bad], chunk_size=1)
        assert result["failed"] == ["1004.dan"] and result["rejected"]
        assert "failed to update users" in result["detail"]
    finally:
        store.delete_user(f"native-{mode}")

    panel.call("stop", node=mode)
    assert face_node.store().list_users(source="pasarguard") == []
    panel.call("start", node=mode, users=[ALICE])   # the client's stop() closes nothing it cannot reopen


@pytest.mark.parametrize("mode", ["rest", "grpc"])
def test_wrong_key_is_forbidden(face_node, panel, mode):
    panel.call("connect", node=f"wrong-{mode}", mode=mode, port=face_node.port(mode), ca=face_node.ca,
               key=str(uuid.uuid4()))
    err = panel.error("info", node=f"wrong-{mode}")
    assert err.code == 403
    assert "api key mismatch" in err.detail


def test_client_checks_the_pinned_certificate(face_node, panel, tmp_path):
    """The panel pins the node's certificate: another certificate is refused by the client."""
    from fastpath.supervisor.bootstrap import make_self_signed
    other, _key = make_self_signed(["127.0.0.1"])
    panel.call("connect", node="unpinned", mode="rest", port=face_node.rest_port, ca=other.decode(),
               key=face_node.api_key)
    err = panel.error("info", node="unpinned")
    assert err.code not in (200, 401, 403) and ("certificate" in err.detail.lower() or "ssl" in err.detail.lower())
    assert isinstance(err, DriverError)
