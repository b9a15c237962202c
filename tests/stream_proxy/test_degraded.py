"""Without a supervisor to pass commands on, writes still succeed: the store holds them and
workers reread it when they start; the failed command is logged.  The control server runs
standalone here (real gunicorn process, no supervisor socket)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import yaml

from fastpath.config import load_config
from fastpath.node_log import node_log_path
from tests.support.node import free_tcp_port, http

pytestmark = pytest.mark.integration


def test_writes_succeed_and_are_logged_when_workers_cannot_be_told(tmp_path):
    port = free_tcp_port()
    cfg_path = tmp_path / "node.yaml"
    cfg_path.write_text(yaml.safe_dump({"control": {"listen": f"127.0.0.1:{port}"},
                                        "counters": {"slotsPerShard": 256},
                                        "media": {"listen": f"127.0.0.1:{free_tcp_port()}",
                                                  "allowUpstreamNetworks": ["127.0.0.0/8"]}}))
    cfg = load_config(cfg_path, tmp_path / "data")
    cfg.data_dir.mkdir()
    with open(tmp_path / "control.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "fastpath.control.server", "--config", str(cfg_path),
                                 "--data-dir", str(cfg.data_dir)], stdout=log,
                                stderr=subprocess.STDOUT, env=dict(os.environ))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if http("GET", base + "/api/v1/ping", timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "control server did not start"
            time.sleep(0.1)
        r = http("POST", base + "/streams", {"url": "http://o.example/nosup.ts",
                                              "failover_urls": ["http://b.example/nosup.ts"]})
        assert r.status == 200, r.text
        sid = r.json()["stream_id"]
        # No counter segment either: the stream is listed, idle, with zero figures.
        listed = http("GET", base + "/streams").json()
        assert [s["stream_id"] for s in listed["streams"]] == [sid]
        assert listed["streams"][0]["client_count"] == 0
        fo = http("POST", base + f"/streams/{sid}/failover")
        assert fo.status == 200 and fo.json()["failover_index"] == 0 and fo.json()["url_index"] == 1 and fo.json()["active_clients"] == 0
        assert http("POST", base + "/webhooks", {"url": "http://127.0.0.1:9/x"}).status == 200
        assert http("DELETE", base + f"/streams/{sid}").status == 200
        health = http("GET", base + "/health")
        assert health.status == 200 and health.json()["uptime_seconds"] >= 0
    finally:
        proc.terminate()
        proc.wait(10)
    text = (tmp_path / "control.log").read_text(errors="replace")
    node_log = node_log_path(cfg.data_dir)
    if node_log.exists():
        text += node_log.read_text(errors="replace")
    assert "media_streams_changed not delivered to the workers" in text
    assert "media_failover not delivered" in text
