"""The README's first command, verbatim, where a newcomer runs it: in the root of a fresh clone.

``pip install .`` (not ``-e``) puts the compiled package in the venv, while the clone's root holds
the uncompiled source; a child started with ``python -m`` from there would import the source and
fail on the first missing extension module, in a restart loop.  This clones the committed HEAD,
installs it into a new venv (the pip cache makes the dependencies quick; the Cython build is the
slow part), runs ``fastpath serve`` in the clone's root, and checks that it answers and stays up
20 s without one restart.
"""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.default_ports import default_ports_lock, assert_default_ports_free
from tests.support.node import http

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(600)
def test_readme_first_command_in_a_fresh_clone(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    clone = tmp_path / "fastpath"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    env = dict(os.environ, FASTPATH_LOG_LEVEL="INFO", PIP_DISABLE_PIP_VERSION_CHECK="1",
               FASTPATH_BUILD_JOBS=str(os.cpu_count() or 1))
    for key in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(key, None)
    venv = clone / ".venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, cwd=clone, env=env)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    env["VIRTUAL_ENV"] = str(venv)
    started = time.monotonic()
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "."], check=True, cwd=clone,
                   env=env, timeout=480, stdout=subprocess.DEVNULL)
    print(f"pip install . took {time.monotonic() - started:.0f}s")
    # The checkout's own source is what would shadow the installed package.
    assert (clone / "fastpath" / "__init__.py").exists()
    assert not list((clone / "fastpath").rglob("*.so")), "the clone should hold no built module"

    with default_ports_lock():
        assert_default_ports_free()
        proc = subprocess.Popen(["fastpath", "serve"], cwd=clone, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            body = None
            while time.monotonic() < deadline and body is None:
                assert proc.poll() is None, proc.stdout.read().decode()
                try:
                    r = http("GET", "http://127.0.0.1:9480/api/v1/health", timeout=1)
                    if r.status == 200:
                        body = r.json()
                except OSError:
                    pass
                time.sleep(0.2)
            assert body is not None and body["status"] == "healthy"
            time.sleep(20)
            assert proc.poll() is None
            r = http("GET", "http://127.0.0.1:9480/api/v1/health", timeout=5)
            assert r.status == 200 and r.json()["restarts"] == 0, r.body
            node = http("GET", "http://127.0.0.1:9480/api/v1/node", timeout=5).json()
            assert all(c["restarts"] == 0 and c["alive"] for c in node["children"]), node
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(15)
            out = proc.stdout.read().decode()
    assert code == 0, out
    assert "restart" not in out and "ModuleNotFoundError" not in out, out
    assert "serving" in out
