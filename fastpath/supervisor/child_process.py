"""How the supervisor starts a child, and what every child does first.

Two things every child shares with the supervisor:

- **Which package it runs.**  A child is ``python -P -m <module>``: ``-P`` keeps the working
  directory off ``sys.path``, so a checkout in the cwd (the uncompiled source, without its
  extension modules) cannot shadow the package the supervisor itself runs.  When the
  supervisor's package is not on the interpreter's own path (run from a checkout without an
  install), its root goes on ``PYTHONPATH``, so the child still imports that same copy.
- **A status line.**  The child reports on an inherited socket (``FASTPATH_STATUS_FD``) either
  ``ready`` once it serves, or ``failed <one line>`` when it cannot start.  The supervisor tells
  a start-up failure (the node ends with that line) from a crash of a running child (restarted
  with backoff) by it.
"""
from __future__ import annotations

import errno
import os
import signal
import site
import socket
import ssl
import sys
from pathlib import Path

STATUS_FD_ENV = "FASTPATH_STATUS_FD"


def die_with_parent() -> None:
    """Ask the kernel to SIGTERM this process when the supervisor dies (Linux
    ``PR_SET_PDEATHSIG``), so no orphan keeps serving with nobody counting or supervising."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


# -- supervisor side -------------------------------------------------------------------------

def package_root() -> Path:
    """The directory holding the ``fastpath`` (and ``control``) packages this process runs."""
    import fastpath
    return Path(fastpath.__file__).resolve().parent.parent


def _interpreter_paths() -> set[str]:
    paths = set(site.getsitepackages())
    try:
        paths.add(site.getusersitepackages())
    except AttributeError:
        pass
    return {str(Path(p).resolve()) for p in paths}


def child_command(module: str, *args: str) -> tuple[list[str], dict[str, str]]:
    """(argv, env) that run ``module`` as a child with the supervisor's own package."""
    env = dict(os.environ)
    root = str(package_root())
    if root not in _interpreter_paths():
        # A checkout or an editable install: put its root first, as ``-m`` from there did.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return [sys.executable, "-P", "-m", module, *args], env


# -- child side ------------------------------------------------------------------------------

def _status_socket() -> socket.socket | None:
    fd = os.environ.pop(STATUS_FD_ENV, None)
    if not fd:
        return None
    try:
        return socket.socket(fileno=int(fd))
    except (OSError, ValueError):
        return None


_status: list = []


def _send(line: str) -> bool:
    """Send one status line; False when there is no supervisor to hear it."""
    if not _status:
        _status.append(_status_socket())
    sock = _status[0]
    if sock is None:
        return False
    try:
        sock.sendall(line.replace("\n", " ").encode("utf-8", "replace")[:4000] + b"\n")
        return True
    except OSError:
        return False


def report_ready() -> None:
    """Tell the supervisor this child serves (sent once per process; later calls are ignored)."""
    if getattr(report_ready, "sent", False):
        return
    report_ready.sent = True
    _send("ready")


def report_failure(message: str) -> None:
    """Tell the supervisor this child cannot start, in one line (on stderr when the child
    runs on its own)."""
    if not _send("failed " + message):
        print(f"{os.path.basename(sys.argv[0] or 'fastpath')}: cannot start: {message}",
              file=sys.stderr, flush=True)


def describe_startup_error(exc: BaseException) -> str:
    """One line for an exception that stopped a child from starting: no traceback, the
    address or file it was about, the system's words for the problem."""
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, OSError):
        what = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            what = "address already in use"
        if exc.filename:
            return f"{exc.filename}: {what}"
        return what if exc.strerror else str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
