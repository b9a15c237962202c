"""Shared fixtures of the Hysteria 2 tests: a TLS certificate, local targets, an in-process
server, and a node process with its default user's secret."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastpath.supervisor.bootstrap import ensure_certificate


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> tuple[str, str]:
    cert, key = ensure_certificate(tmp_path_factory.mktemp("tls"))
    return str(cert), str(key)


def default_secret(data_dir: Path) -> str:
    return json.loads((Path(data_dir) / "secrets.json").read_text())["default_user_secret"]
