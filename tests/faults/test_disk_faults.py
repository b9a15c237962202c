"""A full or read-only data dir (issue 18, item 5): API writes answer 507 / 503 with a message
(never a generic 500), nothing half-applied, reads keep answering.

The data dir sits on a small tmpfs mounted for the test (needs root); "full" is a filler file
taking the rest of it, "read-only" is the tmpfs remounted ro (chmod does not stop root)."""
from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from tests.support.node import NodeProcess

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def _fill(path):
    fd = os.open(path / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)


def _new_user(node):
    return node.post("/api/v1/users", {"id": f"u-{uuid.uuid4().hex[:8]}",
                                      "auth_secret": uuid.uuid4().hex * 8})


def test_full_then_read_only_data_dir(tmp_path, small_disk):
    node = NodeProcess(tmp_path, data_dir=small_disk / "data").start()
    try:
        assert _new_user(node).status in (200, 201)
        before = node.get("/api/v1/users").body
        _fill(small_disk)
        answers = [_new_user(node) for _ in range(20)]
        statuses = {a.status for a in answers}
        assert 500 not in statuses, [a.body for a in answers if a.status == 500][:2]
        full = [a for a in answers if a.status == 507]
        assert full, statuses
        assert "disk is full" in full[0].json()["message"]
        assert node.get("/api/v1/health").status == 200
        assert node.get("/api/v1/users").body == before          # nothing half-applied
        # Stopping on a full disk: exit 0, a one-line warning, no logging error dumps.
        assert node.stop() == 0
        out = node.log()
        assert "Traceback" not in out and "--- Logging error ---" not in out, out[-3000:]
        assert "counters not folded into the store" in out
        os.unlink(small_disk / "filler")
        node.start()                                             # and it recovers
        assert _new_user(node).status in (200, 201)
    finally:
        node.stop()


def test_a_read_only_store_maps_to_503(tmp_path):
    """A write refused by a read-only file system is a 503 with a message.  (A live tmpfs
    cannot be remounted ro under a process that has files open for writing, so the store is
    opened through a read-only bind mount, as a data dir on a file system gone read-only.)"""
    import sqlite3

    from fastpath.control.errors import storage_error
    from fastpath.store import StateStore, User
    data, ro = tmp_path / "data", tmp_path / "ro"
    data.mkdir()
    ro.mkdir()
    StateStore(data / "state.db").create_user(User("a", "s"))
    if subprocess.run(["mount", "--bind", str(data), str(ro)]).returncode:
        pytest.skip("cannot bind-mount here")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], check=True)
        db = sqlite3.connect(f"file:{ro / 'state.db'}?mode=ro", uri=True)
        with pytest.raises(sqlite3.Error) as info:
            db.execute("INSERT INTO users (id, created) VALUES ('b', 0)")
        err = storage_error(info.value)
        assert err is not None and err.status.startswith("503"), info.value
        assert "cannot be written" in err.description
        with pytest.raises(OSError) as info:
            open(ro / "x", "w")
        assert storage_error(info.value).status.startswith("503")
        db.close()
    finally:
        subprocess.run(["umount", "-l", str(ro)])


def test_hysteria_traffic_keeps_moving_and_counting_on_a_full_disk(tmp_path, small_disk, targets):
    """The data plane never waits on the disk: with the data dir full, a download through the
    node still arrives whole, and its bytes are still counted (in shared memory; the store
    catches up when the disk has room)."""
    import asyncio
    import hashlib
    import struct

    from fastpath.hy2.client.client import simple_client
    from fastpath.worker.event_loop import run
    from tests.hy2.conftest import default_secret
    from tests.hy2.targets import pattern

    size = 8 << 20
    node = NodeProcess(tmp_path, data_dir=small_disk / "data").start()
    try:
        secret = default_secret(node.data_dir)
        _fill(small_disk)

        async def download(seed):
            client = simple_client(node.config["listen"], secret)
            await asyncio.wait_for(client.ensure_connected(), 15)
            reader, writer = await client.open_tcp(f"127.0.0.1:{targets.source}")
            writer.write(struct.pack(">QQ", size, seed))
            h, got = hashlib.sha256(), 0
            while got < size:
                data = await asyncio.wait_for(reader.read(1 << 20), 10)
                if not data:
                    break
                h.update(data)
                got += len(data)
            writer.close()
            await client.close()
            return got, h.digest()

        rx_before = node.get("/api/v1/traffic").json()["users"].get("default", {}).get("rx", 0)
        got, digest = run(download(5))
        want = hashlib.sha256()
        for chunk in pattern(size, 5):
            want.update(chunk)
        assert got == size and digest == want.digest()
        rx = node.get("/api/v1/traffic").json()["users"]["default"]["rx"]
        assert rx - rx_before >= size
        assert node.get("/api/v1/health").status == 200
    finally:
        node.stop()
