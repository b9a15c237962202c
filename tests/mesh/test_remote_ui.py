"""HY2 SCALE ``/scale/remote/{chain}/...``: a peer's web UI and API through the mesh.

Three real nodes on loopback, A → B → C as in ``test_multihop`` (A dials B as B's user
``peer-a``, B dials C as C's user ``peer-b``), and a client ``down`` of A that nothing
answers; A runs two workers (one carries each exchange).  What A's control face answers under ``/scale/remote/b/...`` must be B's (its node
id, its tokens), under ``/scale/remote/b/c/...`` C's; the serving node's gateway lets only one
``/scale/`` request through, marked as tunnelled (so the default password opens nothing).
"""
from __future__ import annotations

import asyncio
import time

import pytest

from fastpath.hy2.client.client import simple_client
from fastpath.worker.event_loop import run
from tests.hy2scale.conftest import SCALE, ScaleClient, sha
from tests.hy2scale.test_exits import make_user
from tests.support.node import NodeProcess, free_udp_port

from fastpath.control.hy2scale.remote import rewrite_html, split_chain

pytestmark = pytest.mark.integration

PASSWORD = "b-admin-pw"


def scale_node(tmp, name, workers=1):
    return NodeProcess(tmp.mktemp(name), {"scale": dict(SCALE)}, workers=workers)


def set_password(scale, new):
    r = scale("PUT", "/settings/password", {"current_password": sha("admin"), "new_password": sha(new)})
    assert r.status == 200, r.text


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    with scale_node(tmp_path_factory, "remote-c") as c, scale_node(tmp_path_factory, "remote-b") as b, \
            scale_node(tmp_path_factory, "remote-a", workers=2) as a:
        for n in (a, b, c):
            n.hy2 = n.config["listen"]
            n.scale = ScaleClient(n)
            n.node_id = n.scale.get("/node").json()["node_id"]
        c.peer_b = make_user(c.scale, "peer-b")
        b.peer_a = make_user(b.scale, "peer-a")
        for owner, name, addr, secret in ((b, "c", c.hy2, "peer-b:pw-peer-b"), (a, "b", b.hy2, "peer-a:pw-peer-a"),
                                          (a, "down", f"127.0.0.1:{free_udp_port()}", "x:y")):
            r = owner.scale("POST", "/clients", {"name": name, "addr": addr, "password": secret, "insecure": True})
            assert r.status == 201, r.text
        set_password(b.scale, PASSWORD)
        b.scale = ScaleClient(b, password=PASSWORD)       # the change revoked every token
        yield a, b, c


def remote(a, method, path, body=None, token=None, **headers):
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return a.request(method, "/scale/remote/" + path, body, headers=headers, timeout=30)


def login(a, chain, password):
    return remote(a, "POST", f"{chain}/scale/api/login", {"username": "admin", "password": sha(password)})


def test_a_answers_with_b_s_api_one_hop(mesh):
    a, b, _c = mesh
    r = login(a, "b", PASSWORD)
    assert r.status == 200, r.text
    token = r.json()["token"]
    # B's token: it works on B itself, and not on A.
    assert b.request("GET", "/scale/api/node", headers={"Authorization": f"Bearer {token}"}).status == 200
    assert a.request("GET", "/scale/api/node", headers={"Authorization": f"Bearer {token}"}).status == 401
    r = remote(a, "GET", "b/scale/api/node", token=token)
    assert r.status == 200, r.text
    assert r.json()["node_id"] == b.node_id != a.node_id
    # A write goes through once: a user created on B through A's tunnel.
    r = remote(a, "POST", "b/scale/api/users", {"username": "via-tunnel", "password": "pw"}, token=token)
    assert r.status == 201, r.text
    names = [u["username"] for u in b.scale.get("/users").json()]
    assert names.count("via-tunnel") == 1
    assert "via-tunnel" not in [u["username"] for u in a.scale.get("/users").json()]
    # B's own refusals come back as B sent them.
    assert remote(a, "GET", "b/scale/api/node").status == 401


def test_two_hops_reach_c_and_a_default_password_opens_nothing_there(mesh):
    a, b, c = mesh
    # C still has admin/admin: through the tunnel that logs in to nothing.
    r = login(a, "b/c", "admin")
    assert r.status == 403 and "default password" in r.text, r.text
    set_password(c.scale, "c-admin-pw")
    c.scale = ScaleClient(c, password="c-admin-pw")
    r = login(a, "b/c", "c-admin-pw")
    assert r.status == 200, r.text
    r = remote(a, "GET", "b/c/scale/api/node", token=r.json()["token"])
    assert r.status == 200, r.text
    assert r.json()["node_id"] == c.node_id


def test_pages_come_through_with_their_base_rewritten(mesh):
    a, b, _c = mesh
    r = remote(a, "GET", "b/scale/")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html"), r.text[:200]
    assert '<base href="/scale/remote/b/"' in r.text
    direct = b.request("GET", "/scale/api/build-id")
    assert remote(a, "GET", "b/scale/api/build-id").json() == direct.json()


def test_bad_chains_are_400s(mesh):
    a, _b, _c = mesh
    for path, message in (("", "usage: /remote/{peer}/{path}"), ("/", "usage: /remote/{peer}/{path}"),
                          ("scale/api/node", "missing peer chain"), ("api/node", "missing peer chain"),
                          ("b/c_x/scale/api/node", "bad peer chain")):
        r = a.request("GET", "/scale/remote" + ("/" + path if path else ""))
        assert r.status == 400, (path, r.status, r.text)
        assert message in r.text, (path, r.text)


def test_a_down_or_unknown_peer_is_a_502_with_the_reason(mesh):
    a, _b, _c = mesh
    r = remote(a, "GET", "down/scale/api/build-id")
    assert r.status == 502 and "tunnel to down failed" in r.json()["error"], r.text
    r = remote(a, "GET", "nope/scale/api/build-id")
    assert r.status == 502 and "not a configured peer" in r.json()["error"], r.text
    # A hop further along that does not exist: B refuses to continue.
    r = remote(a, "GET", "b/nowhere/scale/api/build-id")
    assert r.status == 502 and "nowhere" in r.json()["error"], r.text


def test_chaining_and_streams_are_refused(mesh):
    a, _b, _c = mesh
    r = remote(a, "GET", "b/scale/api/build-id", **{"X-Hy2scale-Proxy": "true"})
    assert r.status == 403 and "proxy chaining" in r.text
    # B's gateway refuses its own /scale/remote/ (the request would hop again from B).
    r = remote(a, "GET", "b/scale/remote/c/scale/api/build-id")
    assert r.status == 403 and "proxy chaining" in r.text, r.text
    r = remote(a, "GET", "b/scale/api/graph-layout/stream", Accept="text/event-stream")
    assert r.status == 501 and r.json()["capable"] is False
    # Asked without saying so: the carrying worker sees the event stream's head and stops.
    token = login(a, "b", PASSWORD).json()["token"]
    started = time.monotonic()
    r = remote(a, "GET", f"b/scale/api/graph-layout/stream?token={token}")
    assert r.status == 501 and "text/event-stream" in r.json()["error"], r.text
    assert time.monotonic() - started < 10


async def _raw_tunnel(listen: str, secret: str, request: bytes) -> bytes:
    client = simple_client(listen, secret)
    try:
        await asyncio.wait_for(client.ensure_connected(), 15)
        reader, writer = await client.open_tcp("_relay_api_:0")
        writer.write(request)
        data = await asyncio.wait_for(reader.read(-1), 20)
        writer.close()
        return data
    finally:
        await client.close()


def test_the_gateway_lets_one_scale_request_through(mesh):
    """A user of B talks to B's gateway directly: B's control listener is on loopback, where
    the native API needs no token; only /scale/ is reachable, one request, no chunked body."""
    _a, b, _c = mesh
    secret = "peer-a:pw-peer-a"

    def ask(raw: bytes) -> bytes:
        return run(_raw_tunnel(b.hy2, secret, raw))

    got = ask(b"GET /api/v1/users HTTP/1.1\r\nHost: x\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 403") and b"only the HY2 SCALE face" in got, got[:200]
    got = ask(b"GET /scale/../api/v1/users HTTP/1.1\r\nHost: x\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 400"), got[:200]
    got = ask(b"POST /scale/api/login HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 411"), got[:200]
    # A second request smuggled behind the first is never answered.
    got = ask(b"GET /scale/api/build-id HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
              b"GET /api/v1/users HTTP/1.1\r\nHost: x\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 200") and got.count(b"HTTP/1.1 ") == 1, got[:300]


def test_a_tunnelled_login_cannot_use_a_default_password(mesh):
    """A still has admin/admin and its control listener on loopback, where that logs in; the
    same login through A's own gateway is refused, whatever mark the caller sends."""
    a, _b, _c = mesh
    make_user(a.scale, "tester")
    body = b'{"username": "admin", "password": "%s"}' % sha("admin").encode()
    for mark in (b"", b"X-Hy2scale-Proxy: false\r\n"):
        raw = (b"POST /scale/api/login HTTP/1.1\r\nContent-Type: application/json\r\n" + mark +
               b"Content-Length: %d\r\n\r\n" % len(body) + body)
        got = run(_raw_tunnel(a.hy2, "tester:pw-tester", raw))
        assert got.startswith(b"HTTP/1.1 403") and b"default password" in got, got[:300]
    assert a.post("/scale/api/login", {"username": "admin", "password": sha("admin")}).status == 200


def test_split_chain_and_rewrite_follow_the_reference():
    assert split_chain("/vm/") == (["vm"], "/scale/")
    assert split_chain("/vm/scale/login") == (["vm"], "/scale/login")
    assert split_chain("/us/us-east/scale/api/node") == (["us", "us-east"], "/scale/api/node")
    assert split_chain("/vm/assets/app.js") == (["vm"], "/scale/assets/app.js")
    assert split_chain("/vm/index.html") == (["vm"], "/scale/index.html")
    html = b'<script>window.__BASE__="/scale";</script>'
    assert rewrite_html(html, "/scale/remote/b/c") == \
        b'<script>window.__BASE__="/scale/remote/b/c";window.__PROXY__=true;</script>'
