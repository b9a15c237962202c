"""A user the API answered 201 for is accepted by every worker at once: create, connect right
after the answer, 20 times, against a real two-worker ``fastpath serve`` (so a client may land
on either worker), with our client.  Changes are enforceable on answer too: a user disabled
through PATCH is refused by the next connection, with no wait in between."""
from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from fastpath.hy2.client.client import AuthError, simple_client
from fastpath.worker.event_loop import run
from tests.support.node import NodeProcess

pytestmark = pytest.mark.integration

ROUNDS = 20


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with NodeProcess(tmp_path_factory.mktemp("create-connect"), {}, workers=2) as n:
        yield n


async def accepted(node, secret) -> bool:
    client = simple_client(node.config["listen"], secret)
    try:
        await asyncio.wait_for(client.connect(), 10)
        return True
    except AuthError:
        return False
    finally:
        await client.close()


def test_created_user_connects_right_after_the_201(node):
    refused = []
    for i in range(ROUNDS):
        secret = f"fresh-secret-{i}"
        r = node.post("/api/v1/users", {"id": f"fresh-{i}", "auth_secret": secret})
        assert r.status == 201, r.text
        if not run(accepted(node, secret)):
            refused.append(i)
    assert refused == [], f"refused right after the 201: rounds {refused}"


def test_disabled_user_is_refused_right_after_the_answer(node):
    refused_late = []
    for i in range(ROUNDS // 2):
        secret = f"gone-secret-{i}"
        r = node.post("/api/v1/users", {"id": f"gone-{i}", "auth_secret": secret})
        assert r.status == 201, r.text
        r = node.request("PATCH", f"/api/v1/users/gone-{i}", {"enabled": False})
        assert r.status == 200, r.text
        if run(accepted(node, secret)):
            refused_late.append(i)
    assert refused_late == [], f"still accepted after the PATCH answered: rounds {refused_late}"


def test_a_worker_that_cannot_confirm_gets_retry_after_not_a_silent_201(node):
    """A stopped worker cannot take the change: the API still stores it (201) but says it is
    not enforced yet (Retry-After), and once the worker runs again the user connects."""
    children = node.get("/api/v1/node").json()["children"]
    worker = next(c for c in children if c["shard"] == 0)
    os.kill(worker["pid"], signal.SIGSTOP)
    try:
        started = time.monotonic()
        r = node.post("/api/v1/users", {"id": "while-stopped", "auth_secret": "stopped-secret"},
                      timeout=30)
        took = time.monotonic() - started
    finally:
        os.kill(worker["pid"], signal.SIGCONT)
    assert r.status == 201, r.text
    assert r.headers.get("Retry-After") == "1"
    assert r.headers.get("X-Fastpath-Enforced") == "pending"
    assert took < 12
    # Both workers run again: the next change is confirmed, and the user is accepted.
    r = node.request("PATCH", "/api/v1/users/while-stopped", {"enabled": True})
    assert r.status == 200 and r.headers.get("Retry-After") is None, r.text
    assert all(run(accepted(node, "stopped-secret")) for _ in range(4))
