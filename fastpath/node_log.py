"""The node's own log file, ``<dataDir>/node.log``, written by every process of the node.

One file for all processes gives operators (and the PasarGuard panel's log stream) every line in
order, each tagged with the process it came from (``supervisor``, ``worker[0]``, ``control``...).
Appends of one line are atomic between processes.  The supervisor rotates the file when it
grows past a bound; ``WatchedFileHandler`` in every process notices the new file by its inode
and reopens it, so no process keeps writing into the rotated one.
"""
from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import time
from pathlib import Path

NODE_LOG_NAME = "node.log"
LOG_FORMAT = "%(asctime)s {label} %(levelname)s %(name)s: %(message)s"
ROTATE_BYTES = 16 * 1024 * 1024
KEEP_ROTATED = 3


RETRY_SECONDS = 30.0


class NodeLogHandler(logging.handlers.WatchedFileHandler):
    """The node log, which gives way when the data dir's disk is full or read-only: one
    warning on stderr (where every process logs too), then records are dropped from the file
    (never the ``--- Logging error ---`` dump per record) until a retry after
    ``RETRY_SECONDS`` succeeds."""

    failed_at: float | None = None

    def emit(self, record):
        if self.failed_at is not None:
            if time.monotonic() - self.failed_at < RETRY_SECONDS:
                return
            self.failed_at = None
            self.close()                 # reopen on the next write
        try:
            super().emit(record)
        except OSError:                  # reopening the file failed (not caught by logging)
            self.handleError(record)

    def handleError(self, record):
        if self.failed_at is None:
            exc = sys.exc_info()[1]
            print(f"fastpath: warning: {self.baseFilename} cannot be written ({exc}); logging "
                  f"to stderr only, retrying every {RETRY_SECONDS:.0f}s", file=sys.stderr)
        self.failed_at = time.monotonic()


class NodeFormatter(logging.Formatter):
    """``LOG_FORMAT``, with the continuation lines of a many-line record (a traceback,
    gunicorn's "Current configuration" dump) indented, so every line of node.log either starts
    with the one time/process/level head or with whitespace: a reader splits records on that."""

    def format(self, record):
        text = super().format(record)
        if "\n" not in text:
            return text
        head, *rest = text.split("\n")
        return "\n".join([head, *(line if not line or line[0] in " \t" else "  " + line
                                  for line in rest)])


def node_log_path(data_dir: Path) -> Path:
    return Path(data_dir) / NODE_LOG_NAME


def setup_process_logging(data_dir: Path | None, label: str) -> None:
    """Log to stderr and to the node log, each line tagged with ``label``."""
    logging.basicConfig(level=os.environ.get("FASTPATH_LOG_LEVEL", "INFO"),
                        format=LOG_FORMAT.format(label=label))
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setFormatter(NodeFormatter(LOG_FORMAT.format(label=label)))
    if data_dir is not None and Path(data_dir).is_dir():
        log_to_node_file(data_dir, label)


def log_to_node_file(data_dir: Path, label: str, level: int | str | None = None) -> logging.Handler:
    """Add the node log to the root logger of this process (once); returns the handler."""
    path = str(node_log_path(data_dir).resolve())
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, logging.FileHandler) and handler.baseFilename == path:
            return handler
    handler = NodeLogHandler(path, encoding="utf-8")
    handler.setFormatter(NodeFormatter(LOG_FORMAT.format(label=label)))
    if level is not None:
        handler.setLevel(level)
    root.addHandler(handler)
    return handler


def rotate_if_large(data_dir: Path, max_bytes: int = ROTATE_BYTES, keep: int = KEEP_ROTATED) -> bool:
    """Move ``node.log`` to ``node.log.1`` (older ones shift up, the oldest is dropped) once it
    is larger than ``max_bytes``.  Returns True when it rotated."""
    path = node_log_path(data_dir)
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    for n in range(keep - 1, 0, -1):
        older = path.with_name(f"{NODE_LOG_NAME}.{n}")
        if older.exists():
            os.replace(older, path.with_name(f"{NODE_LOG_NAME}.{n + 1}"))
    os.replace(path, path.with_name(f"{NODE_LOG_NAME}.1"))
    return True
