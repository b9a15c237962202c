"""A scale user over Hysteria 2 with our own client: authentication, live traffic_used, the
cut when the limit is crossed or the user is toggled off, sessions and a device kick with its
refusal period (2 s in these tests; 60 s by default)."""
from __future__ import annotations

import asyncio
import time

import pytest

from fastpath.hy2.client.client import AuthError, simple_client
from fastpath.worker.event_loop import run

pytestmark = pytest.mark.integration


def make_user(scale, name, **fields):
    r = scale("POST", "/users", {"username": name, "password": f"pw-{name}", **fields})
    assert r.status == 201, r.text
    return r.json()


async def connected(client, timeout=15.0):
    return await asyncio.wait_for(client.ensure_connected(), timeout)


async def echo(client, port, n=100_000):
    reader, writer = await client.open_tcp(f"127.0.0.1:{port}")
    data = b"z" * n
    writer.write(data)
    assert await reader.readexactly(n) == data
    return reader, writer


async def api(scale, *args, **kw):
    return await asyncio.to_thread(scale, *args, **kw)


def test_scale_user_authenticates_and_traffic_used_grows(node, scale, targets):
    user = make_user(scale, "gina")

    async def main():
        wrong = simple_client(node.hy2, "gina:not-the-password")
        with pytest.raises(AuthError):
            await wrong.connect()
        client = simple_client(node.hy2, "gina:pw-gina")
        await connected(client)
        await echo(client, targets.echo, 200_000)
        # Live: counted while the connection is still open.
        used = (await api(scale, "GET", f"/users/{user['id']}")).json()["traffic_used"]
        assert used >= 400_000
        listed = {u["id"]: u for u in (await api(scale, "GET", "/users")).json()}
        assert listed[user["id"]]["traffic_used"] >= 400_000 and listed[user["id"]]["online"] == 1
        node_view = (await api(scale, "GET", "/node")).json()
        assert node_view["tx_bytes"] + node_view["rx_bytes"] >= used
        r = await api(scale, "PUT", f"/users/{user['id']}/reset-traffic")
        assert r.status == 200 and r.json()["traffic_used"] < used
        listed = {u["id"]: u for u in (await api(scale, "GET", "/users")).json()}
        assert listed[user["id"]]["traffic_used"] < used
        await client.close()
    run(main())


def test_over_limit_cuts_the_live_connection(node, scale, targets):
    make_user(scale, "hank", traffic_limit=300_000)

    async def main():
        client = simple_client(node.hy2, "hank:pw-hank")
        await connected(client)
        reader, writer = await client.open_tcp(f"127.0.0.1:{targets.echo}")
        sent = 0
        while not client.conn.closed and sent < 5_000_000:
            writer.write(b"y" * 50_000)
            sent += 50_000
            try:
                await asyncio.wait_for(reader.readexactly(50_000), 2)
            except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
                break
        await asyncio.wait_for(client.conn.terminated.wait(), 3)
        assert client.conn.close_reason.error_code == 0x107
        assert sent < 5_000_000
        with pytest.raises(AuthError):
            await simple_client(node.hy2, "hank:pw-hank").connect()
    run(main())


def test_toggle_off_cuts_the_live_connection(node, scale, targets):
    user = make_user(scale, "iris")

    async def main():
        client = simple_client(node.hy2, "iris:pw-iris")
        await connected(client)
        await echo(client, targets.echo, 1000)
        r = await api(scale, "PUT", f"/users/{user['id']}/toggle")
        assert r.status == 200 and r.json()["enabled"] is False
        await asyncio.wait_for(client.conn.terminated.wait(), 2)
        assert client.conn.close_reason.error_code == 0x107
    run(main())


def test_expiry_cuts_the_live_connection(node, scale, targets):
    user = make_user(scale, "jack")

    async def main():
        client = simple_client(node.hy2, "jack:pw-jack")
        await connected(client)
        r = await api(scale, "PUT", f"/users/{user['id']}", {"expiry": time.time() + 1.5})
        assert r.status == 200
        await echo(client, targets.echo, 1000)
        assert not client.conn.closed
        await asyncio.wait_for(client.conn.terminated.wait(), 4)
        assert client.conn.close_reason.error_code == 0x107
    run(main())


def test_sessions_list_the_device_and_delete_kicks_and_refuses_it(node, scale, targets):
    user = make_user(scale, "kate")

    async def main():
        clients = [simple_client(node.hy2, "kate:pw-kate") for _ in range(2)]
        for c in clients:
            await connected(c)
            await echo(c, targets.echo, 10_000)
        body = (await api(scale, "GET", "/sessions")).json()
        mine = [d for d in body["devices"] if d["user_id"] == user["id"]]
        assert body["total"] == len(body["devices"]) and len(mine) == 1
        dev = mine[0]
        assert dev["username"] == "kate" and dev["remote_ip"] == "127.0.0.1"
        assert dev["protocol"] == "hysteria2" and dev["conn_count"] == 2
        assert dev["tx_bytes"] >= 20_000 and dev["rx_bytes"] >= 20_000
        assert dev["connect_at"].endswith("Z") and dev["duration"] >= 0
        assert (await api(scale, "DELETE", "/sessions/0123456789abcdef")).status == 404
        r = await api(scale, "DELETE", f"/sessions/{dev['key']}")
        assert r.status == 200 and r.json()["closed"] == 2, r.text
        for c in clients:
            await asyncio.wait_for(c.conn.terminated.wait(), 2)
            assert c.conn.close_reason.error_code == 0x107
        kicked_at = time.monotonic()
        with pytest.raises(AuthError):
            await simple_client(node.hy2, "kate:pw-kate").connect()
        assert time.monotonic() - kicked_at < 2.0           # refused inside the period
        await asyncio.sleep(2.2 - (time.monotonic() - kicked_at))
        again = simple_client(node.hy2, "kate:pw-kate")
        await again.connect()                                # the period is over
        await again.close()
    run(main())


def test_new_credentials_close_the_old_ones_connections(node, scale, targets):
    user = make_user(scale, "liam")

    async def main():
        client = simple_client(node.hy2, "liam:pw-liam")
        await connected(client)
        r = await api(scale, "PUT", f"/users/{user['id']}", {"traffic_limit_gb": 5})
        assert r.status == 200
        await echo(client, targets.echo, 1000)              # same credentials: still connected
        r = await api(scale, "PUT", f"/users/{user['id']}", {"password": "fresh"})
        assert r.status == 200
        await asyncio.wait_for(client.conn.terminated.wait(), 2)
        with pytest.raises(AuthError):
            await simple_client(node.hy2, "liam:pw-liam").connect()
        fresh = simple_client(node.hy2, "liam:fresh")
        await fresh.connect()
        await fresh.close()
    run(main())


def test_a_refusal_outlives_a_worker_restart(tmp_path, targets):
    """The refusal is in the store as well as in the workers: a worker killed and restarted
    during the refusal period still refuses the device, and accepts it after."""
    import os
    import signal

    from tests.hy2scale.conftest import ScaleClient
    from tests.support.node import NodeProcess

    period = 6.0
    with NodeProcess(tmp_path, {"scale": {"kickRefusal": f"{period:g}s"}}) as node:
        scale = ScaleClient(node)
        make_user(scale, "mona")
        hy2 = node.config["listen"]

        async def main():
            client = simple_client(hy2, "mona:pw-mona")
            await connected(client)
            await echo(client, targets.echo, 1000)
            dev = next(d for d in (await api(scale, "GET", "/sessions")).json()["devices"]
                       if d["username"] == "mona")
            assert (await api(scale, "DELETE", f"/sessions/{dev['key']}")).status == 200
            kicked_at = time.monotonic()
            victim = next(c for c in (await asyncio.to_thread(node.get, "/api/v1/node")).json()["children"]
                          if c.get("shard") == 0)
            os.kill(victim["pid"], signal.SIGKILL)
            while True:                                  # the supervisor restarts it
                child = next(c for c in (await asyncio.to_thread(node.get, "/api/v1/node")).json()["children"]
                             if c.get("shard") == 0)
                if child["alive"] and child["pid"] != victim["pid"]:
                    break
                assert time.monotonic() - kicked_at < period - 2, "worker not restarted in time"
                await asyncio.sleep(0.05)
            await asyncio.to_thread(node.wait_healthy, 5)
            # The new worker never got the command: it refuses from the store.
            with pytest.raises(AuthError):
                await asyncio.wait_for(simple_client(hy2, "mona:pw-mona").connect(), 5)
            assert time.monotonic() - kicked_at < period
            await asyncio.sleep(max(0.0, period + 0.3 - (time.monotonic() - kicked_at)))
            again = simple_client(hy2, "mona:pw-mona")
            await connected(again)
            await again.close()
        run(main())
