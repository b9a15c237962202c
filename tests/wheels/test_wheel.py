"""The prebuilt wheel installs with no build tools and no index, and the node starts from it."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.node import free_tcp_port, free_udp_port, http

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_wheel_installs_offline_without_build_tools_and_serves(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "wheels" / "build.py"), "--with-deps"], check=True,
                   cwd=ROOT, stdout=subprocess.DEVNULL, timeout=900)
    dist = ROOT / "wheels" / "dist"
    (wheel,) = dist.glob("fastpath-*.whl")
    assert "manylinux" in wheel.name, "auditwheel should have retagged the wheel"

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    # No build tools: without setuptools/wheel and with a compiler that always fails, only a
    # prebuilt wheel can install.
    subprocess.run([str(py), "-m", "pip", "uninstall", "-y", "-q", "setuptools", "wheel"],
                   capture_output=True)
    env = dict(os.environ, CC="/bin/false", CXX="/bin/false", PIP_NO_INPUT="1")
    env.pop("PYTHONPATH", None)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation",
                    "--find-links", str(dist), str(wheel)], check=True, env=env, timeout=600)
    assert subprocess.run([str(py), "-c", "import setuptools"], capture_output=True).returncode != 0

    work = tmp_path / "run"
    work.mkdir()
    port = free_tcp_port()
    (work / "node.yaml").write_text(f"control: {{listen: 127.0.0.1:{port}}}\n"
                                    f"listen: 127.0.0.1:{free_udp_port()}\n"
                                    f"media: {{listen: 127.0.0.1:{free_tcp_port()}}}\n")
    proc = subprocess.Popen([str(venv / "bin" / "fastpath"), "serve", "-c", "node.yaml"], cwd=work,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline and status != 200:
            try:
                r = http("GET", f"http://127.0.0.1:{port}/api/v1/health", timeout=1)
                status = r.status
            except OSError:
                time.sleep(0.2)
        assert status == 200
        # The installed package is the wheel's, not this checkout.
        where = subprocess.run([str(py), "-c", "import fastpath.shm.counter_table as m; print(m.__file__)"],
                               cwd=work, capture_output=True, text=True, env=env).stdout
        assert str(venv) in where and where.strip().endswith(".so")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(15)
        out = proc.stdout.read().decode()
    assert code == 0, out
