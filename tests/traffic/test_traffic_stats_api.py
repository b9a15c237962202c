"""The Traffic Stats API against a real node with real Hysteria 2 traffic.

Every figure is checked against the payload bytes the test's own client moved: the sink target
reads ``uint64 n`` + n bytes and answers a 32-byte digest (tx = 8 + n, rx = 32); the source
target reads 16 bytes and sends n (tx = 16, rx = n).
"""
from __future__ import annotations

import asyncio
import os
import signal
import struct
import threading
import time

import pytest

from fastpath.hy2.client.client import simple_client
from fastpath.worker.event_loop import run
from tests.hy2.conftest import default_secret
from tests.support.node import NodeProcess, free_tcp_port, http

pytestmark = pytest.mark.integration
SECRET = "stats-secret"


def make_node(tmp_path, **extra):
    ts_port = free_tcp_port()
    config = {"trafficStats": {"listen": f"127.0.0.1:{ts_port}", "secret": SECRET, **extra.pop("ts", {})},
              "control": {"listen": f"127.0.0.1:{free_tcp_port()}", "workers": 2, "threads": 4}}
    config.update(extra)
    node = NodeProcess(tmp_path, config)
    node.ts_url = f"http://127.0.0.1:{ts_port}"
    return node


def ts(node, method, path, body=None, secret=SECRET, headers=None):
    h = dict(headers or {})
    if secret is not None:
        h["Authorization"] = secret
    return http(method, node.ts_url + path, body, h)


def traffic(node, clear=False):
    r = ts(node, "GET", "/traffic" + ("?clear=1" if clear else ""))
    assert r.status == 200 and r.headers["Content-Type"] == "application/json; charset=utf-8"
    return r.json()


async def send_to_sink(client, port: int, n: int) -> None:
    reader, writer = await client.open_tcp(f"127.0.0.1:{port}")
    writer.write(struct.pack(">Q", n))
    chunk = b"x" * 65536
    left = n
    while left:
        k = min(left, len(chunk))
        writer.write(chunk[:k])
        await writer.drain()
        left -= k
    assert len(await reader.readexactly(32)) == 32
    writer.close()


async def read_from_source(client, port: int, n: int) -> None:
    reader, writer = await client.open_tcp(f"127.0.0.1:{port}")
    writer.write(struct.pack(">QQ", n, 7))
    await reader.readexactly(n)
    writer.close()


def wait_for(predicate, timeout=5.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def test_reported_bytes_equal_the_payload_moved(tmp_path, targets):
    with make_node(tmp_path) as node:
        secret = default_secret(node.data_dir)

        async def main():
            client = simple_client(node.config["listen"], secret)
            await asyncio.wait_for(client.ensure_connected(), 15)
            await send_to_sink(client, targets.sink, 300_000)
            await read_from_source(client, targets.source, 123_457)
            await client.close()

        run(main())
        expected = {"default": {"tx": 8 + 300_000 + 16, "rx": 32 + 123_457}}
        wait_for(lambda: traffic(node) == expected)
        # The same figures on the control port, the native API and /metrics.
        r = http("GET", node.base_url + "/traffic", headers={"Authorization": SECRET})
        assert r.json() == expected
        native = node.get("/api/v1/traffic").json()["users"]["default"]
        assert (native["tx"], native["rx"]) == (300_024, 123_489)
        assert traffic(node, clear=True) == expected
        assert traffic(node) == {}
        # Clearing never touches the monotonic totals.
        metrics = node.get("/metrics").text
        assert 'fastpath_user_tx_bytes_total{user="default"} 300024\n' in metrics
        assert 'fastpath_user_rx_bytes_total{user="default"} 123489\n' in metrics
        assert node.get("/api/v1/users/default").json()["used"] == 300_024 + 123_489


def test_secret_routing_and_bad_kick_bodies(tmp_path, targets):
    with make_node(tmp_path) as node:
        for path in ("/traffic", "/online", "/nope"):
            r = ts(node, "GET", path, secret="wrong")
            assert (r.status, r.body) == (401, b"unauthorized\n")
        r = ts(node, "GET", "/traffic", secret=None)
        assert (r.status, r.body) == (401, b"unauthorized\n")
        r = ts(node, "GET", "/nope")
        assert (r.status, r.body) == (404, b"404 page not found\n")
        r = ts(node, "POST", "/traffic")
        assert r.status == 404  # routing is exact on method and path
        assert ts(node, "GET", "/").status == 200
        secret = default_secret(node.data_dir)

        async def main():
            client = simple_client(node.config["listen"], secret)
            await asyncio.wait_for(client.ensure_connected(), 15)
            reader, writer = await client.open_tcp(f"127.0.0.1:{targets.echo}")
            assert wait_for(lambda: ts(node, "GET", "/online").json() == {"default": 1})
            for body in (b'{"default": 1}', b"not json", b'["default", 3]', b'"default"'):
                r = await asyncio.to_thread(ts, node, "POST", "/kick", body)
                assert r.status == 400 and r.body.endswith(b"\n")
            writer.write(b"still here")
            assert await reader.readexactly(10) == b"still here"  # nothing was kicked
            r = await asyncio.to_thread(ts, node, "POST", "/kick", b'["default"]')
            assert (r.status, r.body) == (200, b"")
            # Every connection of the id closes at once.
            with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
                await asyncio.wait_for(reader.readexactly(1), 3)
            assert await asyncio.to_thread(lambda: wait_for(lambda: ts(node, "GET", "/online").json() == {}))
            await client.close()

        run(main())


def test_dump_streams_json_and_text(tmp_path, targets):
    with make_node(tmp_path) as node:
        secret = default_secret(node.data_dir)

        async def main():
            client = simple_client(node.config["listen"], secret)
            await asyncio.wait_for(client.ensure_connected(), 15)
            reader, writer = await client.open_tcp(f"127.0.0.1:{targets.echo}")
            writer.write(b"a" * 1000)
            await reader.readexactly(1000)
            r = await asyncio.to_thread(ts, node, "GET", "/dump/streams")
            assert r.body.endswith(b"}\n")
            (stream,) = r.json()["streams"]
            assert list(stream) == ["state", "auth", "connection", "stream", "req_addr",
                                    "hooked_req_addr", "tx", "rx", "initial_at", "last_active_at"]
            assert stream["state"] == "estab" and stream["auth"] == "default"
            assert stream["req_addr"] == f"127.0.0.1:{targets.echo}" and stream["hooked_req_addr"] == ""
            assert (stream["tx"], stream["rx"]) == (1000, 1000)
            assert stream["stream"] == writer.stream_id
            assert stream["initial_at"].endswith("Z")
            text = await asyncio.to_thread(ts, node, "GET", "/dump/streams", headers={"Accept": "text/plain"})
            header, row = text.text.splitlines()
            assert header.startswith("State    Auth           Connection   Stream")
            assert row.startswith("ESTAB    default     ")
            assert f"{stream['connection']:08X}" in row and row.endswith(f"127.0.0.1:{targets.echo}  -")
            writer.close()
            await client.close()

        run(main())


def test_clear_under_concurrent_traffic_loses_and_duplicates_nothing(tmp_path, targets):
    with make_node(tmp_path) as node:
        secret = default_secret(node.data_dir)
        cleared = []
        stop = threading.Event()
        lock = threading.Lock()

        def clearer():
            while not stop.is_set():
                got = traffic(node, clear=True).get("default")
                if got:
                    with lock:
                        cleared.append((got["tx"], got["rx"]))

        threads = [threading.Thread(target=clearer) for _ in range(4)]
        for t in threads:
            t.start()
        moved_tx = moved_rx = 0
        try:
            async def main():
                nonlocal moved_tx, moved_rx
                client = simple_client(node.config["listen"], secret)
                await asyncio.wait_for(client.ensure_connected(), 15)
                for i in range(12):
                    await send_to_sink(client, targets.sink, 200_000 + i)
                    moved_tx += 8 + 200_000 + i
                    moved_rx += 32
                    await read_from_source(client, targets.source, 50_000 + i)
                    moved_tx += 16
                    moved_rx += 50_000 + i
                await client.close()

            run(main())
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join()
        final = traffic(node, clear=True).get("default", {"tx": 0, "rx": 0})
        assert len(cleared) > 3, "the clearers should have raced the traffic"
        assert sum(c[0] for c in cleared) + final["tx"] == moved_tx
        assert sum(c[1] for c in cleared) + final["rx"] == moved_rx


def test_totals_survive_a_killed_worker_and_a_restart(tmp_path, targets):
    node = make_node(tmp_path, ts={"listAllUsers": True})
    node.start()
    try:
        secret = default_secret(node.data_dir)

        async def move(n):
            client = simple_client(node.config["listen"], secret)
            await asyncio.wait_for(client.ensure_connected(), 20)
            await send_to_sink(client, targets.sink, n)
            await client.close()

        run(move(100_000))
        assert wait_for(lambda: traffic(node) == {"default": {"tx": 100_008, "rx": 32}})
        worker = next(c for c in node.get("/api/v1/node").json()["children"] if c["shard"] == 0)
        os.kill(worker["pid"], signal.SIGKILL)
        node.wait_healthy(15)
        wait_for(lambda: all(c["alive"] for c in node.get("/api/v1/node").json()["children"]), 10)
        assert traffic(node) == {"default": {"tx": 100_008, "rx": 32}}
        run(move(1000))
        assert wait_for(lambda: traffic(node) == {"default": {"tx": 101_016, "rx": 64}})
        # listAllUsers: table users with no traffic are listed with zeros.
        node.post("/api/v1/users", {"id": "idle"})
        assert traffic(node)["idle"] == {"tx": 0, "rx": 0}
        assert node.stop() == 0
        node.start()
        assert traffic(node)["default"] == {"tx": 101_016, "rx": 64}
        assert node.get("/api/v1/users/default").json()["used"] == 101_016 + 64
    finally:
        node.stop()
