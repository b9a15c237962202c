"""The control API as production runs it (``python -m fastpath.control.server``: gunicorn), for the
benchmarks of its faces: a data dir and config prepared, the API started on them and waited
for until it answers."""
from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time

import yaml

from fastpath.config import load_config
from fastpath.store import StateStore
from tests.support.node import free_tcp_port


def prepare_node(tmp, slots_per_shard: int, **sections):
    """(control port, config path, NodeConfig, StateStore) of a fresh data dir under ``tmp``:
    the control API on a free loopback port with 4 threads, ``sections`` added to the config."""
    port = free_tcp_port()
    cfg_path = tmp / "node.yaml"
    cfg_path.write_text(yaml.safe_dump({"control": {"listen": f"127.0.0.1:{port}", "threads": 4},
                                        "counters": {"slotsPerShard": slots_per_shard}, **sections}))
    cfg = load_config(cfg_path, tmp / "data")
    cfg.data_dir.mkdir()
    return port, cfg_path, cfg, StateStore(cfg.store_path)


def start_control_api(cfg_path, data_dir, port: int, timeout: float = 30) -> subprocess.Popen:
    env = dict(os.environ, FASTPATH_LOG_LEVEL="WARNING")
    proc = subprocess.Popen([sys.executable, "-m", "fastpath.control.server", "--config", str(cfg_path),
                             "--data-dir", str(data_dir)], env=env)
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            conn.request("GET", "/api/v1/ping")
            if conn.getresponse().status == 200:
                conn.close()
                return proc
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("the control API did not start")
        time.sleep(0.1)
