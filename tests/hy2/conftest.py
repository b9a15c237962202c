"""Shared fixtures of the Hysteria 2 tests: a TLS certificate, local targets, an in-process
server, and a node process with its default user's secret."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from fastpath.supervisor.bootstrap import ensure_certificate
from tests.support.node import NodeProcess


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> tuple[str, str]:
    cert, key = ensure_certificate(tmp_path_factory.mktemp("tls"))
    return str(cert), str(key)


def default_secret(data_dir: Path) -> str:
    return json.loads((Path(data_dir) / "secrets.json").read_text())["default_user_secret"]


@contextlib.contextmanager
def hy2_node(tmp_path_factory, name: str, config: dict | None = None, **options):
    """A node (``NodeProcess`` with ``options``) in a fresh folder named after ``name``, its
    default user's secret as ``node.secret``."""
    with NodeProcess(tmp_path_factory.mktemp(name), config or {}, **options) as n:
        n.secret = default_secret(n.data_dir)
        yield n
