"""The store never starts empty by mistake (issue 18, item 3) and is private (issue 19, item 8).

On a used data dir a missing, empty, garbage or damaged ``state.db`` stops ``fastpath serve``
with one line naming what was found and how to recover; ``--reset-store`` starts empty on
purpose, keeping the old file aside.  The database and its WAL/SHM are created 0600.
"""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys

import pytest
import yaml

from fastpath.store import StateStore, User
from fastpath.store.state_store import StoreUnusable
from tests.support.node import NodeProcess, free_tcp_port, free_udp_port


def _many_users(path, n=3000):
    store = StateStore(path)
    store.replace_users("native", [User(f"u{i}", f"secret-{i}-" + "x" * 40) for i in range(n)])
    store._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()


def _damage(path, how):
    if how == "missing":
        os.unlink(path)
        for suffix in ("-wal", "-shm"):
            if os.path.exists(str(path) + suffix):
                os.unlink(str(path) + suffix)
    elif how == "empty":
        open(path, "wb").close()
    elif how == "garbage":
        with open(path, "wb") as f:
            f.write(os.urandom(8192))
    elif how == "truncated":
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.truncate(size // 2)


@pytest.mark.parametrize("how", ["missing", "empty", "garbage", "truncated"])
def test_a_used_data_dir_refuses_an_unusable_store(tmp_path, how):
    db = tmp_path / "state.db"
    _many_users(db)
    _damage(db, how)
    with pytest.raises(StoreUnusable) as info:
        StateStore.open_checked(db, used=True)
    message = str(info.value)
    assert "\n" not in message and "--reset-store" in message and "backup" in message
    assert {"missing": "missing", "empty": "empty", "garbage": "unreadable",
            "truncated": ""}[how] in message
    if how not in ("missing", "empty"):
        assert db.stat().st_size > 0        # nothing was changed by the refusal


@pytest.mark.parametrize("how", ["missing", "empty", "garbage", "truncated"])
def test_reset_store_moves_the_old_file_aside_and_starts_empty(tmp_path, how):
    db = tmp_path / "state.db"
    _many_users(db)
    _damage(db, how)
    store = StateStore.open_checked(db, used=True, reset=True)
    assert store.list_users() == []
    store.create_user(User("fresh", "s"))
    kept = [p.name for p in tmp_path.iterdir() if ".unusable-" in p.name]
    assert bool(kept) == (how != "missing"), kept


def test_a_new_data_dir_and_a_healthy_store_open(tmp_path):
    store = StateStore.open_checked(tmp_path / "new.db", used=False)
    store.create_user(User("a", "s"))
    store.close()
    assert [u.id for u in StateStore.open_checked(tmp_path / "new.db", used=True).list_users()] == ["a"]


def test_store_files_are_created_0600(tmp_path):
    old = os.umask(0o022)
    try:
        store = StateStore(tmp_path / "state.db")
        store.create_user(User("a", "s"))
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    finally:
        os.umask(old)
    assert set(modes) >= {"state.db", "state.db-wal", "state.db-shm"}, modes
    assert all(m == 0o600 for m in modes.values()), modes


def test_an_existing_0644_store_is_made_private(tmp_path):
    db = tmp_path / "state.db"
    StateStore(db).create_user(User("a", "s"))
    for p in tmp_path.iterdir():
        os.chmod(p, 0o644)
    StateStore(db)
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_synchronous_full_on_every_connection(tmp_path):
    store = StateStore(tmp_path / "state.db")
    assert store._db().execute("PRAGMA synchronous").fetchone()[0] == 2   # FULL


def _serve(tmp_path, data, *extra, timeout=20):
    cfg = {"listen": f"127.0.0.1:{free_udp_port()}",
           "control": {"listen": f"127.0.0.1:{free_tcp_port()}"},
           "counters": {"slotsPerShard": 1024}}
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.run([sys.executable, "-m", "fastpath", "serve", "-c", str(path),
                           "--data-dir", str(data), *extra],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("how", ["empty", "garbage"])
def test_serve_stops_with_one_line_and_no_traceback(tmp_path, how):
    data = tmp_path / "data"
    with NodeProcess(tmp_path, data_dir=data) as node:
        assert node.post("/api/v1/users", {"id": "kept", "auth_secret": "k"}).status in (200, 201)
    _damage(data / "state.db", how)
    for suffix in ("-wal", "-shm"):
        (data / ("state.db" + suffix)).unlink(missing_ok=True)
    done = _serve(tmp_path, data)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr and "--reset-store" in lines[0], lines


def test_serve_with_reset_store_starts_empty_on_purpose(tmp_path):
    data = tmp_path / "data"
    with NodeProcess(tmp_path, data_dir=data) as node:
        assert node.post("/api/v1/users", {"id": "kept", "auth_secret": "k"}).status in (200, 201)
    _damage(data / "state.db", "empty")
    for suffix in ("-wal", "-shm"):
        (data / ("state.db" + suffix)).unlink(missing_ok=True)
    node = NodeProcess(tmp_path, data_dir=data)
    # Start by hand with the flag, as an operator would.
    cfg_path = tmp_path / "reset.yaml"
    cfg_path.write_text(yaml.safe_dump(node.config))
    proc = subprocess.Popen([sys.executable, "-m", "fastpath", "serve", "-c", str(cfg_path),
                             "--data-dir", str(data), "--reset-store"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    node.proc = proc
    try:
        node.wait_healthy(20)
        users = node.get("/api/v1/users").json()
        ids = [u["id"] for u in (users["users"] if isinstance(users, dict) else users)]
        assert "kept" not in ids
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert any(".unusable-" in p.name for p in data.iterdir())
    assert "--reset-store" in (data / "node.log").read_text()
