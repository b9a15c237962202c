"""The command line and the node log as an operator meets them: ``--version``, the client's
help, ``--log-level`` over ``FASTPATH_LOG_LEVEL``, and one line format for every process in
``node.log`` (the supervisor, the workers, the control API and gunicorn's own lines)."""
from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from fastpath import __version__
from fastpath.node_log import node_log_path
from tests.support.node import NodeProcess

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (supervisor|worker\[\d+\]|control) "
                  r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.\[\]-]+: ")


def fastpath(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastpath", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_version():
    done = fastpath("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"fastpath {__version__} (Python {sys.version.split()[0]})"
    assert fastpath("version").stdout == done.stdout


def test_client_help_says_what_the_client_does():
    done = fastpath("client", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "Run a Hysteria 2 client" in text and "SOCKS5" in text and "Exits non-zero" in text
    assert "--log-level" in text


def test_a_bad_log_level_is_refused():
    done = fastpath("serve", "--log-level", "loud")
    assert done.returncode == 2 and "invalid choice: 'loud'" in done.stderr


def _log_lines(node, until, timeout=20.0) -> list[str]:
    path = node_log_path(node.data_dir)
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if until(lines):
            return lines
        time.sleep(0.2)
    raise AssertionError("node.log never had what was awaited:\n" + "\n".join(lines[-40:]))


@pytest.mark.integration
def test_log_level_option_beats_the_variable_and_every_line_has_one_format(tmp_path):
    # The variable says ERROR, the option says debug: the option wins, in every process.
    (tmp_path / "debug").mkdir()
    with NodeProcess(tmp_path / "debug", env={"FASTPATH_LOG_LEVEL": "ERROR"},
                     args=["--log-level", "debug"]) as node:
        node.get("/api/v1/node")

        def complete(lines):
            text = "\n".join(lines)
            # ERROR would hide the INFO lines of supervisor and worker, and gunicorn's DEBUG.
            return " control DEBUG gunicorn.error: " in text and " supervisor INFO " in text \
                and " worker[0] INFO " in text and " control INFO gunicorn.error: " in text
        lines = _log_lines(node, complete)
    # A record's continuation lines (gunicorn's configuration dump at debug) are indented.
    odd = [line for line in lines if line.strip() and not LINE.match(line) and line[0] not in " \t"]
    assert not odd, "lines in another format:\n" + "\n".join(odd[:10])
    assert any(" control DEBUG gunicorn.error: " in line for line in lines)
    assert any(line.startswith("  ") for line in lines), "the multi-line record was expected"


@pytest.mark.integration
def test_the_variable_alone_sets_the_level(tmp_path):
    (tmp_path / "warn").mkdir()
    (tmp_path / "info").mkdir()
    with NodeProcess(tmp_path / "warn", env={"FASTPATH_LOG_LEVEL": "WARNING"}) as node:
        node.get("/api/v1/node")
        time.sleep(1.0)
        lines = node_log_path(node.data_dir).read_text().splitlines()
    chatty = [line for line in lines if " INFO " in line or " DEBUG " in line]
    assert not chatty, chatty[:5]
    # The same node at the default level logs its start at INFO (so the check above can fail).
    with NodeProcess(tmp_path / "info") as node:
        _log_lines(node, lambda ls: any(" supervisor INFO " in line for line in ls)
                   and any(" worker[0] INFO " in line for line in ls))


def test_a_traceback_is_one_record_whose_later_lines_are_indented():
    import logging

    from fastpath.node_log import LOG_FORMAT, NodeFormatter
    fmt = NodeFormatter(LOG_FORMAT.format(label="worker[0]"))
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("fastpath.x", logging.ERROR, __file__, 1, "failed", None,
                                   sys.exc_info())
    head, *rest = fmt.format(record).split("\n")
    assert LINE.match(head) and head.endswith("failed")
    assert rest and all(line[0] in " \t" for line in rest)
    assert rest[-1] == "  ValueError: boom"
