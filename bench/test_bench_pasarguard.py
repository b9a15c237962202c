"""PasarGuard face at 10k users, driven by the panel's own client (Python 3.12 venv).

1. ``sync_users`` with 10k users on a real node (supervisor, one worker, Hysteria 2): the time
   until the data plane enforces the new set, seen from the data plane: a user removed by the
   sync holds a live Hysteria 2 connection, and the clock stops when the proxied TCP connection
   of that user is closed by the node.  Also the call's own duration (it returns once the
   workers reloaded) and the chunked delta of the same 10k users.  Baseline, same run: the
   store's ``replace_users`` of the same 10k users in-process (the floor: writing the set).
2. ``get_stats(UsersStat)`` with 10k users that all moved traffic since the last reset (20k
   stat rows per answer), with and without reset.  The face runs standalone over a counter
   segment this benchmark fills (a stand-in supervisor socket acknowledges user changes).
   Baseline, same run: ``info()`` (GetBaseInfo) through the same client and transport.
"""
from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time

import pytest
import yaml

import fastpath.shm as shm
from fastpath.config import load_config
from fastpath.store import StateStore, User
from fastpath.worker.event_loop import run
from tests.pasarguard.panel_client import (PanelClientUnavailable, PanelDriver, pasarguard_section,
                                           wait_tls_port)
from tests.support.node import NodeProcess

USERS = 10_000
MODES = ("grpc", "rest")


def user_set(prefix: str, n: int = USERS) -> list[dict]:
    return [{"email": f"{prefix}{i}", "auth": f"{prefix}-secret-{i}", "inbounds": ["hysteria2"]} for i in range(n)]


def driver_or_skip(log) -> PanelDriver:
    try:
        return PanelDriver(log)
    except PanelClientUnavailable as exc:
        pytest.skip(str(exc))


# -- 1. sync_users at 10k users on a real node ---------------------------------------------------
@pytest.fixture(scope="module")
def real_node(tmp_path_factory):
    pytest.importorskip("fastpath.hy2.client.client", reason="needs the Hysteria 2 client to hold a connection")
    tmp = tmp_path_factory.mktemp("pg-sync-bench")
    section = pasarguard_section()
    node = NodeProcess(tmp, {"pasarguard": section}, env={"FASTPATH_LOG_LEVEL": "WARNING"}).start()
    rest_port, grpc_port = int(section["listen"].rsplit(":", 1)[1]), int(section["grpcListen"].rsplit(":", 1)[1])
    wait_tls_port(rest_port, node=node)
    wait_tls_port(grpc_port, node=node)
    driver = driver_or_skip(tmp / "driver.log")
    ca = (node.data_dir / "tls" / "node.crt").read_text()
    for mode, port in (("rest", rest_port), ("grpc", grpc_port)):
        driver.call("connect", node=mode, mode=mode, port=port, ca=ca, key=section["apiKey"], timeout=120)
    yield node, driver
    driver.close()
    node.stop()


async def hold_connection(node, auth: str):
    """A Hysteria 2 connection of ``auth`` with one proxied TCP connection open; returns
    (client, closed event set when the node closes it)."""
    from fastpath.hy2.client.client import Hy2Client
    closed = asyncio.Event()

    async def target(reader, writer):
        await reader.read()
        closed.set()
        writer.close()

    server = await asyncio.start_server(target, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = Hy2Client(server_host="127.0.0.1", server_port=int(node.config["listen"].rsplit(":", 1)[1]),
                       auth=auth, insecure=True)
    _reader, writer = await client.open_tcp(f"127.0.0.1:{port}")
    writer.write(b"x")
    await writer.drain()
    return client, closed, server


async def can_connect(node, auth: str) -> bool:
    from fastpath.hy2.client.client import AuthError, Hy2Client
    client = Hy2Client(server_host="127.0.0.1", server_port=int(node.config["listen"].rsplit(":", 1)[1]),
                       auth=auth, insecure=True)
    try:
        await client.connect()
        return True
    except AuthError:
        return False
    finally:
        await client.close()


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_sync_users_10k_until_enforced(real_node, mode, compare, tmp_path):
    node, driver = real_node
    rounds = []

    async def one_round(n: int):
        old, new = user_set(f"{mode}{n}a-"), user_set(f"{mode}{n}b-")
        await asyncio.to_thread(driver.call, "start", node=mode, users=old)
        await asyncio.to_thread(driver.call, "prepare", name="new", users=new)
        client, closed, server = await hold_connection(node, old[0]["auth"])
        t0 = time.perf_counter()
        call = asyncio.ensure_future(asyncio.to_thread(driver.call, "sync_users", node=mode, users="new"))
        await asyncio.wait_for(closed.wait(), 60)
        cut = time.perf_counter() - t0
        call_seconds = await call
        returned = time.perf_counter() - t0
        assert await can_connect(node, new[-1]["auth"]) and not await can_connect(node, old[1]["auth"])
        await client.close()
        server.close()
        rounds.append((cut, call_seconds, returned))

    for n in range(3):
        run(one_round(n))
    cut = statistics.median(r[0] for r in rounds)
    call = statistics.median(r[1] for r in rounds)

    # The same 10k users as a chunked delta (what the panel sends for bulk changes).
    driver.call("prepare", name="changed", users=[dict(u, auth=u["auth"] + "-v2") for u in user_set(f"{mode}2b-")])
    chunked = driver.call("sync_users_chunked", node=mode, users="changed", chunk_size=100)
    assert chunked["failed"] == []

    floor = _replace_users_floor(tmp_path)
    returned = statistics.median(r[2] for r in rounds)
    print(f"\n{mode}: removed user's connection closed {cut * 1e3:.0f} ms after sync_users(10k) began; "
          f"call {call * 1e3:.0f} ms (returned to the test after {returned * 1e3:.0f} ms); "
          f"chunked delta {chunked['seconds'] * 1e3:.0f} ms; store floor {floor * 1e3:.0f} ms")
    compare.record("store replace_users 10k users, in-process (ms)", floor * 1e3, "ms")
    compare.record(f"{mode} sync_users 10k: removed user cut off after (ms)", cut * 1e3, "ms",
                   baseline="store replace_users 10k users, in-process (ms)")
    compare.record(f"{mode} sync_users 10k: call returns, workers reloaded (ms)", call * 1e3, "ms",
                   baseline="store replace_users 10k users, in-process (ms)")
    compare.record(f"{mode} sync_users_chunked 10k, 100 per chunk (ms)", chunked["seconds"] * 1e3, "ms",
                   baseline="store replace_users 10k users, in-process (ms)")


def _replace_users_floor(tmp_path) -> float:
    times = []
    for n in range(3):
        store = StateStore(tmp_path / f"floor{n}.db")
        store.replace_users("pasarguard", [User(id=f"a{i}", auth_secret=f"sa{i}") for i in range(USERS)])
        users = [User(id=f"b{i}", auth_secret=f"sb{i}", inbounds=["hysteria2"]) for i in range(USERS)]
        t0 = time.perf_counter()
        store.replace_users("pasarguard", users)
        times.append(time.perf_counter() - t0)
        store.close()
    return statistics.median(times)


# -- 2. get_stats(UsersStat) at 10k users with traffic ---------------------------------------------
class StandInSupervisor:
    """Answers the face's ``users_changed`` on the command socket (no workers here)."""

    def __init__(self, path: str):
        from fastpath.supervisor.command_channel import serve_requests
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def handler(cmd, args):
            return []

        async def main():
            self.server = await asyncio.start_unix_server(lambda r, w: serve_requests(r, w, handler), path=path)
            ready.set()
            await asyncio.Event().wait()

        self.thread = threading.Thread(target=lambda: self.loop.run_until_complete(main()), daemon=True)
        self.thread.start()
        ready.wait(10)


@pytest.fixture(scope="module")
def standalone_face(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pg-stats-bench")
    section = pasarguard_section()
    cfg_path = tmp / "node.yaml"
    cfg_path.write_text(yaml.safe_dump({"pasarguard": section, "counters": {"slotsPerShard": 32768}}))
    cfg = load_config(cfg_path, tmp / "data")
    cfg.data_dir.mkdir()
    StateStore(cfg.store_path)
    table = shm.CounterTable.create(cfg.counter_segment_path, 1, 32768, 4242)
    w = table.writer(0)
    StandInSupervisor(str(cfg.command_socket))
    env = dict(os.environ, FASTPATH_LOG_LEVEL="WARNING")
    proc = subprocess.Popen([sys.executable, "-m", "fastpath.control.pasarguard.server", "--config", str(cfg_path),
                             "--data-dir", str(cfg.data_dir)], env=env)
    rest_port, grpc_port = int(section["listen"].rsplit(":", 1)[1]), int(section["grpcListen"].rsplit(":", 1)[1])
    wait_tls_port(rest_port)
    wait_tls_port(grpc_port)
    driver = driver_or_skip(tmp / "driver.log")
    ca = (cfg.data_dir / "tls" / "node.crt").read_text()
    for mode, port in (("rest", rest_port), ("grpc", grpc_port)):
        driver.call("connect", node=mode, mode=mode, port=port, ca=ca, key=section["apiKey"], timeout=120)
    users = user_set("u")
    driver.call("start", node="grpc", users=users)
    slots = [w.user_slot(u["email"]) for u in users]
    yield driver, w, slots
    driver.close()
    proc.terminate()
    proc.wait(10)
    table.close()
    os.unlink(cfg.counter_segment_path)


def _traffic(w, slots, n: int):
    for s in slots:
        w.count(s, 1000 + n, 5000 + n)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_get_stats_10k_users(standalone_face, mode, compare):
    driver, w, slots = standalone_face
    base = driver.call("info_loop", node=mode, n=50)
    _traffic(w, slots, 1)
    plain = driver.call("stats_loop", node=mode, type="UsersStat", n=20, reset=False)
    assert plain["rows"] == 2 * USERS
    resets = []
    for n in range(10):
        _traffic(w, slots, n)                         # every user moved bytes since the last reset
        out = driver.call("stats_loop", node=mode, type="UsersStat", n=1, reset=True)
        assert out["rows"] == 2 * USERS
        resets.append(out["seconds"][0])
    info_ms = statistics.median(base) * 1e3
    plain_ms = statistics.median(plain["seconds"]) * 1e3
    reset_ms = statistics.median(resets) * 1e3
    print(f"\n{mode}: info {info_ms:.2f} ms; get_stats(UsersStat) 10k users / {2 * USERS} rows "
          f"{plain_ms:.1f} ms, with reset {reset_ms:.1f} ms")
    compare.record(f"{mode} info() latency (ms)", info_ms, "ms")
    compare.record(f"{mode} get_stats(UsersStat) 10k users, no reset (ms)", plain_ms, "ms",
                   baseline=f"{mode} info() latency (ms)")
    compare.record(f"{mode} get_stats(UsersStat) 10k users, reset, all moved (ms)", reset_ms, "ms",
                   baseline=f"{mode} info() latency (ms)")
