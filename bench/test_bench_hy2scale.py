"""HY2 SCALE face read latency at 10k users with live connections, against the control API's
cheapest endpoint served by the same gunicorn in the same run.

The control API runs as in production (``python -m fastpath.control.server``, gunicorn, gthread) over a
store holding 10 000 scale users and a counter segment with their user slots and 2 000 live
Hysteria 2 connections from 500 addresses; requests come from keep-alive HTTP clients in
threads, with a token from a real login.  Figures: bench/RESULTS.md (HY2 SCALE API section).
"""
import hashlib
import http.client
import json
import os

import pytest

from bench.test_bench_traffic_api import measure, report_latency
from fastpath import shm
from fastpath.store import User
from control_proc import prepare_node, start_control_api

USERS, CONNECTIONS, ADDRESSES = 10_000, 2_000, 500


@pytest.fixture(scope="module")
def control_api(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hy2scale-bench")
    port, cfg_path, cfg, store = prepare_node(tmp, 32768)
    ids = [f"{i:08x}" for i in range(USERS)]
    store.replace_users("hy2scale", [
        User(uid, f"user{i}:pw{i}", traffic_limit=10 * 1024 ** 3, source="hy2scale",
             meta={"username": f"user{i}", "password": f"pw{i}", "exit_via": "", "exit_paths": [],
                   "exit_mode": ""}) for i, uid in enumerate(ids)])
    table = shm.CounterTable.create(cfg.counter_segment_path, 1, 32768, 43)
    w = table.writer(0)
    slots = [w.user_slot(uid) for uid in ids]
    for n in range(CONNECTIONS):
        i = n % USERS
        c = w.open(shm.KIND_CONNECTION, ids[i], user_slot=slots[i],
                   text_a=f"198.51.{n % ADDRESSES // 250}.{n % 250}:{4000 + n}", conn_id=n,
                   state=shm.STATE_ESTAB)
        w.count(c, 1000 + n, 5000 + n)
    proc = start_control_api(cfg_path, cfg.data_dir, port)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/scale/api/login", json.dumps(
        {"username": "admin", "password": hashlib.sha256(b"admin").hexdigest()}))
    token = json.loads(c.getresponse().read())["token"]
    yield port, {"Authorization": f"Bearer {token}"}
    proc.terminate()
    proc.wait(10)
    os.unlink(cfg.counter_segment_path)


CASES = [
    ("/api/v1/ping", "/api/v1/ping"),
    ("/scale/api/users (10k)", "/scale/api/users"),
    ("/scale/api/sessions (2k conns, 2k devices)", "/scale/api/sessions"),
    ("/scale/api/node", "/scale/api/node"),
]


@pytest.mark.parametrize("label, path", CASES, ids=[c[0] for c in CASES])
def test_read_latency(control_api, label, path, compare):
    port, headers = control_api
    report_latency(label, *measure(port, path, headers=headers), compare)
