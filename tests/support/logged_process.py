"""A peer the tests run in a child process from one config, with its output in a log file.

sing-box, the official Hysteria 2 client and ``fastpath client`` are all run this way: start on
``with``, killed when the block ends, ``log`` to read what it said, ``alive()`` and
``wait_log()`` to fail a test with that log when the peer died or never said what it should.
A subclass gives ``label``, ``argv()`` and, if its config goes to a file, ``write_config()``.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest


class LoggedProcess:
    label = "process"
    config_suffix = ".json"

    def __init__(self, tmp_path: Path, config: dict, name: str | None = None):
        stamp = f"{os.getpid()}-{time.monotonic_ns()}"
        base = Path(tmp_path) / f"{name or self.label.replace(' ', '-')}-{stamp}"
        self.config = config
        self.config_path = base.with_suffix(self.config_suffix)
        self.log_path = base.with_suffix(".log")
        self.proc: subprocess.Popen | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def write_config(self) -> None:
        """Put ``config`` where ``argv()`` reads it (nothing to do when it goes on argv)."""

    def __enter__(self):
        self.write_config()
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv(), stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._log.close()

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"{self.label} exited ({self.proc.returncode}):\n{self.log}")

    def wait_log(self, text: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log:
            self.alive()
            if time.monotonic() > deadline:
                pytest.fail(f"{self.label} never logged {text!r}:\n{self.log}")
            time.sleep(0.05)
