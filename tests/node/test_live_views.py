"""README claims of the native API, end to end through a real node and our client:
``/api/v1/connections`` and ``/api/v1/streams`` with their filters and paging, and bad
filters answered 400 with a message."""
from __future__ import annotations

import asyncio

import pytest

from fastpath.hy2.client.client import simple_client
from fastpath.worker.event_loop import run
from tests.support.node import NodeProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with NodeProcess(tmp_path_factory.mktemp("views"), {}) as n:
        for uid in ("viewer-a", "viewer-b"):
            r = n.post("/api/v1/users", {"id": uid, "auth_secret": f"secret-{uid}"})
            assert r.status == 201, r.text
        yield n


def test_connections_and_streams_with_filters_and_paging(node, targets):
    async def main():
        a1 = simple_client(node.config["listen"], "secret-viewer-a")
        a2 = simple_client(node.config["listen"], "secret-viewer-a")
        b = simple_client(node.config["listen"], "secret-viewer-b")
        clients = [a1, a2, b]
        try:
            for c in clients:
                await asyncio.wait_for(c.ensure_connected(), 15)
            # viewer-a: three TCP streams (one connection) and a UDP session; viewer-b: one TCP.
            held = []
            for _ in range(3):
                reader, writer = await a1.open_tcp(f"127.0.0.1:{targets.echo}")
                writer.write(b"a" * 1000)
                assert await reader.readexactly(1000) == b"a" * 1000
                held.append(writer)
            udp = await a2.udp_session()
            udp.send(f"127.0.0.1:{targets.udp}", b"u" * 100)
            assert (await asyncio.wait_for(udp.recv(), 5))[1] == b"u" * 100
            reader, writer = await b.open_tcp(f"127.0.0.1:{targets.echo}")
            writer.write(b"b" * 10)
            assert await reader.readexactly(10) == b"b" * 10
            held.append(writer)
            await asyncio.to_thread(check_views, node, targets)
        finally:
            for c in clients:
                await c.close()

    run(main())


def check_views(node, targets):
    conns = node.get("/api/v1/connections").json()
    mine = [c for c in conns["connections"] if c["user"].startswith("viewer-")]
    assert sorted(c["user"] for c in mine) == ["viewer-a", "viewer-a", "viewer-b"]
    assert all(c["remote"].startswith("127.0.0.1:") and c["worker"] == 0 for c in mine)
    only_a = node.get("/api/v1/connections?user=viewer-a").json()
    assert only_a["total"] == 2 and {c["user"] for c in only_a["connections"]} == {"viewer-a"}
    page = node.get("/api/v1/connections?user=viewer-a&offset=1&limit=1").json()
    assert page["total"] == 2 and page["offset"] == 1 and page["limit"] == 1
    assert [c["connection"] for c in page["connections"]] == [only_a["connections"][1]["connection"]]

    streams = node.get("/api/v1/streams?user=viewer-a").json()
    assert streams["total"] == 4
    tcp = node.get("/api/v1/streams?user=viewer-a&kind=tcp").json()
    assert tcp["total"] == 3 and all(s["kind"] == "tcp" for s in tcp["streams"])
    assert all(s["request"] == f"127.0.0.1:{targets.echo}" and s["tx"] == 1000 and s["rx"] == 1000
               for s in tcp["streams"])
    udp = node.get("/api/v1/streams?user=viewer-a&kind=udp").json()
    assert udp["total"] == 1 and udp["streams"][0]["kind"] == "udp" and udp["streams"][0]["tx"] == 100
    estab = node.get("/api/v1/streams?user=viewer-a&state=estab").json()
    assert estab["total"] == 4
    assert node.get("/api/v1/streams?user=viewer-a&state=closed").json()["total"] == 0
    # Paging walks the same ordered list, no row twice, none left out.
    seen = []
    for offset in range(0, 4, 2):
        part = node.get(f"/api/v1/streams?user=viewer-a&offset={offset}&limit=2").json()
        assert part["total"] == 4 and len(part["streams"]) == 2
        seen += [(s["connection"], s["stream"]) for s in part["streams"]]
    assert seen == [(s["connection"], s["stream"]) for s in streams["streams"]]
    assert node.get("/api/v1/streams?user=viewer-a&offset=4").json()["streams"] == []
    b = node.get("/api/v1/streams?user=viewer-b").json()
    assert b["total"] == 1 and b["streams"][0]["tx"] == 10


@pytest.mark.parametrize("query, words", [
    ("kind=sctp", "kind must be tcp or udp"),
    ("state=open", "state must be one of"),
    ("limit=0", "limit from 1 to 10000"),
    ("offset=-1", "offset must be >= 0"),
    ("limit=ten", "must be integers"),
])
def test_bad_filters_are_400_with_a_message(node, query, words):
    r = node.get(f"/api/v1/streams?{query}")
    assert r.status == 400 and words in r.text, r.text
