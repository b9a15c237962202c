"""One node exposed as an operator would expose it: control API on every address (traffic still
goes to 127.0.0.1), a control token, a Traffic Stats secret, no media.apiToken, HY2 SCALE on
with its default admin password.  Every security test of the faces probes this node."""
from __future__ import annotations

import hashlib
import http.client

import pytest

from tests.support.node import HttpResult, NodeProcess, free_tcp_port

TOKEN = "control-token-for-tests"
SECRET = "traffic-stats-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def raw_request(node, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None, timeout: float = 10) -> HttpResult:
    """Send ``path`` exactly as written (no client-side normalisation of slashes or dots)."""
    conn = http.client.HTTPConnection("127.0.0.1", node.control_port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return HttpResult(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def exposed_config(**extra) -> dict:
    cfg = {"control": {"listen": f"0.0.0.0:{free_tcp_port()}", "token": TOKEN},
           "trafficStats": {"secret": SECRET}}
    for key, value in extra.items():
        cfg.setdefault(key, {}).update(value) if isinstance(value, dict) else cfg.__setitem__(key, value)
    return cfg


@pytest.fixture(scope="package")
def exposed(tmp_path_factory):
    with NodeProcess(tmp_path_factory.mktemp("exposed"), exposed_config()) as node:
        yield node
