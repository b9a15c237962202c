"""The control API as production runs it (``python -m control.server``: gunicorn), for the
benchmarks of its faces: started on a prepared data dir and waited for until it answers."""
from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time


def start_control_api(cfg_path, data_dir, port: int, timeout: float = 30) -> subprocess.Popen:
    env = dict(os.environ, FASTPATH_LOG_LEVEL="WARNING")
    proc = subprocess.Popen([sys.executable, "-m", "control.server", "--config", str(cfg_path),
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
