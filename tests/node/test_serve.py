"""`fastpath serve` for real: defaults, clean stop, restarts, config errors, adoption."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.support.default_ports import assert_default_ports_free, default_ports_lock
from tests.support.node import NodeProcess, free_tcp_port, free_udp_port, http

pytestmark = pytest.mark.integration


def test_defaults_answer_health_and_stop_cleanly_on_sigterm(tmp_path):
    """The README's run command: no config, answers within 10 s, exits 0 within 5 s."""
    with default_ports_lock():
        _defaults_answer_health_and_stop_cleanly(tmp_path)


def _defaults_answer_health_and_stop_cleanly(tmp_path):
    env = dict(os.environ, FASTPATH_LOG_LEVEL="WARNING")
    assert_default_ports_free()
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "fastpath", "serve"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        body = None
        while time.monotonic() - started < 10:
            try:
                r = http("GET", "http://127.0.0.1:9480/api/v1/health", timeout=1)
                if r.status == 200:
                    body = r.json()
                    break
            except OSError:
                time.sleep(0.1)
        assert body is not None, "no healthy answer within 10 s"
        assert body["status"] == "healthy" and body["workers_alive"] == 1
        assert (tmp_path / "fastpath-data" / "state.db").exists()
        secrets = json.loads((tmp_path / "fastpath-data" / "secrets.json").read_text())
        assert oct((tmp_path / "fastpath-data" / "secrets.json").stat().st_mode & 0o777) == "0o600"
    finally:
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        code = proc.wait(10)
        elapsed = time.monotonic() - t0
        out = proc.stdout.read().decode()
    assert code == 0, out
    assert elapsed < 5
    # Secrets are printed on the first start only; on loopback no token is asked for, so the
    # generated one is not shown as if it were needed.
    assert secrets["control_token"] not in out
    assert "control API on loopback: no token needed" in out
    assert secrets["default_user_secret"] in out
    proc = subprocess.Popen([sys.executable, "-m", "fastpath", "serve"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # The second start has got as far as the first (healthy), so a banner it would print
        # has been printed by now.
        assert _wait_healthy("http://127.0.0.1:9480", 20) is not None, "second start never healthy"
    finally:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert secrets["default_user_secret"] not in proc.stdout.read().decode()


def _wait_healthy(base: str, timeout: float):
    """The health body once it answers 200, or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = http("GET", base + "/api/v1/health", timeout=1)
            if r.status == 200:
                return r.json()
        except OSError:
            pass
        time.sleep(0.1)
    return None


def test_broken_config_is_refused_with_one_line(tmp_path):
    cfg = tmp_path / "node.yaml"
    cfg.write_text("node:\n  workers: 0\n")
    r = subprocess.run([sys.executable, "-m", "fastpath", "serve", "-c", str(cfg)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr.strip() == "fastpath: config error: node.workers: must be at least 1; got 0"


def test_killed_worker_is_restarted_on_its_shard(tmp_path):
    with NodeProcess(tmp_path, workers=2) as node:
        before = node.get("/api/v1/node").json()
        victim = next(c for c in before["children"] if c["shard"] == 1)
        os.kill(victim["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            after = node.get("/api/v1/node").json()
            child = next(c for c in after["children"] if c["shard"] == 1)
            if child["ready"] and child["pid"] != victim["pid"]:
                break
            time.sleep(0.1)
        else:
            pytest.fail("worker was not restarted")
        assert child["restarts"] == 1
        assert node.get("/api/v1/health").json()["restarts"] == 1
        node.wait_healthy(10)
        shard = after["counters"]["shards_info"][1]
        deadline = time.monotonic() + 5
        while node.get("/api/v1/node").json()["counters"]["shards_info"][1]["writer_pid"] != child["pid"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert node.get("/api/v1/node").json()["counters"]["shards_info"][1]["restarts"] >= 1
        assert shard is not None


def test_crashed_supervisor_leaves_a_segment_the_next_start_adopts(tmp_path):
    node = NodeProcess(tmp_path).start()
    seg_id = node.get("/api/v1/node").json()["counters"]["segment_id"]
    node.proc.kill()
    node.proc.wait()
    node._log.close()
    time.sleep(1.0)  # children follow their parent (PDEATHSIG)
    again = NodeProcess(tmp_path, node.config, data_dir=node.data_dir)
    again.config_path = tmp_path / "node2.yaml"
    with again:
        assert again.get("/api/v1/node").json()["counters"]["segment_id"] == seg_id
    # A clean stop retires the segment: the next start makes a new one.
    with NodeProcess(tmp_path, node.config, data_dir=node.data_dir) as third:
        assert third.get("/api/v1/node").json()["counters"]["segment_id"] != seg_id


def test_sighup_with_a_broken_config_keeps_the_node_running(tmp_path):
    with NodeProcess(tmp_path) as node:
        good = node.config_path.read_text()
        node.config_path.write_text(good + "\nbogus: 1\n")
        node.proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert node.get("/api/v1/health").status == 200
        assert "reload refused: bogus: unknown key" in node.log()
