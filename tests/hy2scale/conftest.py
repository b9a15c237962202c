"""Shared fixtures of the HY2 SCALE face tests: one node with short face timings, and a small
client that logs in and sends the token."""
from __future__ import annotations

import hashlib

import pytest

from tests.support.node import NodeProcess

SCALE = {"kickRefusal": "2s", "layoutPing": "1s", "layoutPoll": "100ms"}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class ScaleClient:
    """Requests to /scale/api with the token of a login."""

    def __init__(self, node, username: str = "admin", password: str = "admin"):
        self.node = node
        r = node.post("/scale/api/login", {"username": username, "password": sha(password)})
        assert r.status == 200, r.text
        self.token = r.json()["token"]
        self.login = r.json()

    def __call__(self, method: str, path: str, body=None, **kw):
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return self.node.request(method, "/scale/api" + path, body, headers=headers, **kw)

    def get(self, path, **kw):
        return self("GET", path, **kw)


@pytest.fixture(scope="package")
def node(tmp_path_factory):
    # Two API processes: a layout change made in one must reach streams served by the other.
    cfg = {"scale": dict(SCALE), "control": {"workers": 2}}
    with NodeProcess(tmp_path_factory.mktemp("scale"), cfg) as n:
        n.hy2 = n.config["listen"]
        yield n


@pytest.fixture(scope="package")
def scale(node):
    return ScaleClient(node)
