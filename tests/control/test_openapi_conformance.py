"""Real answers of a running node match the OpenAPI document it serves.

One node with every face on (native ``/api/v1``, Traffic Stats on the control port, the
m3u-style stream API with a live stream and viewer on its media listener, HY2 SCALE, the
dashboard's event streams, docs) and a Hysteria 2 client holding a connection and a stream,
so lists are not empty.  Every answer, success or refusal, is checked by
``tests/support/openapi_check.py`` against the schema of its status and media type in
``/openapi.json``; the last test says how much of the document was exercised."""
from __future__ import annotations

import asyncio
import hashlib
import re
from http.client import HTTPConnection
import threading

import pytest

from fastpath.hy2.client.client import simple_client
from tests.stream_proxy.origin import Origin
from tests.stream_proxy.viewers import wait_until
from tests.support.node import NodeProcess, free_tcp_port, http
from tests.support.openapi_check import Conformance

pytestmark = pytest.mark.integration

TOKEN = "conformance-token"
SECRET = "ts-secret"
MEDIA_TOKEN = "media-token"
NATIVE = {"Authorization": f"Bearer {TOKEN}"}
TS = {"Authorization": SECRET}
MEDIA = {"X-API-Token": MEDIA_TOKEN}
# A null MPEG-TS packet.
TS_PACKET = b"\x47\x1f\xff\x10" + b"\xff" * 184


PLAYLIST = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n" \
    "#EXTINF:1.0,\nseg0.ts\n#EXT-X-ENDLIST\n"


class HeldConnection(threading.Thread):
    """A Hysteria 2 client with one TCP stream open to the echo target until ``close``."""

    def __init__(self, listen: str, secret: str, target: str):
        super().__init__(daemon=True)
        self.listen, self.secret, self.target = listen, secret, target
        self.ready, self.done = threading.Event(), threading.Event()
        self.error: BaseException | None = None
        self.start()

    def run(self):
        async def main():
            client = simple_client(self.listen, self.secret)
            try:
                await asyncio.wait_for(client.ensure_connected(), 15)
                reader, writer = await client.open_tcp(self.target)
                writer.write(b"x" * 500)
                await reader.readexactly(500)
                self.ready.set()
                while not self.done.is_set():
                    await asyncio.sleep(0.05)
            finally:
                await client.close()
        try:
            asyncio.run(main())
        except BaseException as exc:       # noqa: BLE001 - reported to the test
            self.error = exc
            self.ready.set()

    def close(self):
        self.done.set()
        self.join(10)


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    """The stream tests' origin, fed null TS packets (the relay does not decode them) and a
    one-segment HLS playlist: no ffmpeg needed."""
    media = tmp_path_factory.mktemp("origin")
    (media / "live.ts").write_bytes(TS_PACKET * 400)
    (media / "hls").mkdir()
    (media / "hls" / "index.m3u8").write_text(PLAYLIST)
    (media / "hls" / "seg0.ts").write_bytes(TS_PACKET * 100)
    o = Origin(media)
    yield o
    o.close()


@pytest.fixture(scope="module")
def node(tmp_path_factory, targets):
    media_port = free_tcp_port()
    config = {"control": {"token": TOKEN}, "trafficStats": {"secret": SECRET}, "scale": {},
              "media": {"listen": f"127.0.0.1:{media_port}", "apiToken": MEDIA_TOKEN,
                        "allowUpstreamNetworks": ["127.0.0.0/8"]}}
    with NodeProcess(tmp_path_factory.mktemp("conformance"), config) as n:
        n.media_url = f"http://127.0.0.1:{media_port}"
        r = n.post("/api/v1/users", {"id": "holder", "auth_secret": "holder-secret"}, headers=NATIVE)
        assert r.status == 201, r.text
        held = HeldConnection(n.config["listen"], "holder-secret", f"127.0.0.1:{targets.echo}")
        assert held.ready.wait(20) and held.error is None, held.error
        try:
            yield n
        finally:
            held.close()


@pytest.fixture(scope="module")
def spec(node):
    r = node.get("/openapi.json")
    assert r.status == 200
    return Conformance(r.json())


def call(node, spec, method, path, body=None, headers=None, status=None, base=None):
    """One request, its answer checked against the document (and a body the node took
    against the request schema); (status, decoded JSON)."""
    r = http(method, (base or node.base_url) + path, body, headers)
    value = spec.check(method, path, r.status, r.headers, r.body)
    if 200 <= r.status < 300:
        spec.check_request(method, path, body)
        if method == "GET" and spec.offers_msgpack(method, path, r.status):
            # The same answer in msgpack, as documented (read-only: asked again).
            again = http(method, (base or node.base_url) + path, None,
                         {**(headers or {}), "Accept": "application/msgpack"})
            assert again.headers.get("Content-Type", "").startswith("application/msgpack"), (path, again.headers)
            spec.check(method, path, again.status, again.headers, again.body)
    if status is not None:
        assert r.status == status, (method, path, r.status, r.body[:300])
    return r.status, value


def first_bytes(url: str, spec, method: str, path: str, headers=None, status=200) -> None:
    """A streaming answer (SSE, a live stream): status, headers and its first bytes checked."""
    host, _, _ = url.removeprefix("http://").partition("/")
    conn = HTTPConnection(host, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read1(4096) if method != "HEAD" else b""
        spec.check(method, path, resp.status, resp.headers, data)
        assert resp.status == status, (path, resp.status, data[:200])
    finally:
        conn.close()


def test_native_api(node, spec):
    c = lambda *a, **k: call(node, spec, *a, **{"headers": NATIVE, **k})  # noqa: E731
    c("GET", "/api/v1/health", status=200)
    c("GET", "/api/v1/ping", status=200)
    c("GET", "/api/v1/node", status=200)
    _, created = c("POST", "/api/v1/users", {"id": "conf-a", "traffic_limit": 10**9,
                                             "expiry": "2031-01-01T00:00:00Z"}, status=201)
    assert created["id"] == "conf-a"
    c("POST", "/api/v1/users", {"id": "conf-a"}, status=409)
    c("POST", "/api/v1/users", {"id": "bad id!"}, status=400)
    c("POST", "/api/v1/users", "{not json", status=400)
    c("GET", "/api/v1/users", status=200)
    c("GET", "/api/v1/users/conf-a", status=200)
    c("PATCH", "/api/v1/users/conf-a", {"enabled": False}, status=200)
    c("PUT", "/api/v1/users/conf-a", {"enabled": True}, status=200)
    c("PATCH", "/api/v1/users/conf-a", {}, status=400)
    c("POST", "/api/v1/users/conf-a/reset", status=200)
    c("POST", "/api/v1/users/conf-a/kick", status=200)
    c("POST", "/api/v1/users/nobody/kick", status=404)
    c("POST", "/api/v1/kick", {"ids": ["conf-a"]}, status=200)
    c("POST", "/api/v1/kick", {"ids": "conf-a"}, status=400)
    c("DELETE", "/api/v1/users/conf-a", status=204)
    c("GET", "/api/v1/users/conf-a", status=404)
    c("GET", "/api/v1/users", headers={}, status=401)
    c("GET", "/api/v1/traffic", status=200)
    _, conns = c("GET", "/api/v1/connections?limit=10", status=200)
    c("GET", "/api/v1/connections?limit=0", status=400)
    c("GET", "/api/v1/streams", status=200)
    c("GET", "/api/v1/streams?kind=sctp", status=400)
    c("GET", "/api/v1/config", status=200)
    c("GET", "/metrics", status=200)
    c("GET", "/metrics", headers={}, status=401)
    c("GET", "/openapi.json", status=200)
    c("GET", "/docs", status=200)
    c("GET", "/redoc", status=200)
    c("GET", "/docs/assets/swagger-ui.css", status=200)
    c("GET", "/docs/assets/nothing.js", status=404)
    _, page = c("GET", "/dashboard", status=200)
    r = http("GET", node.base_url + "/dashboard")
    asset = re.search(r'assets/([^"\']+\.js)', r.text).group(1)
    c("GET", f"/dashboard/assets/{asset}", status=200)
    c("GET", "/dashboard/assets/nothing.js", status=404)
    c("GET", "/scale", status=200)
    c("GET", f"/scale/assets/{asset}", status=200)
    first_bytes(node.base_url, spec, "GET", "/api/v1/dashboard/live", NATIVE)
    first_bytes(node.base_url, spec, "GET", "/api/v1/dashboard/log?level=INFO", NATIVE)
    first_bytes(node.base_url, spec, "GET", "/api/v1/dashboard/log?level=LOUD", NATIVE, status=400)


def test_native_inbounds(node, spec):
    """``/api/v1/inbounds``: made, read, changed and removed on the running node; refusals."""
    def c(method, path, body=None, headers=NATIVE, status=None):
        return call(node, spec, method, path, body, headers, status)
    port, moved = free_tcp_port(), free_tcp_port()
    c("GET", "/api/v1/inbounds", status=200)
    c("POST", "/api/v1/inbounds", {"type": "socks", "listen": f"127.0.0.1:{port}", "tag": "conf-in"},
      status=201)
    c("POST", "/api/v1/inbounds", {"type": "socks", "listen": f"127.0.0.1:{port}", "tag": "conf-in"},
      status=409)
    c("POST", "/api/v1/inbounds", {"type": "gopher", "listen": f"127.0.0.1:{moved}"}, status=400)
    c("GET", "/api/v1/inbounds/conf-in", status=200)
    c("GET", "/api/v1/inbounds/nothing", status=404)
    c("PATCH", "/api/v1/inbounds/conf-in", {"listen": f"127.0.0.1:{moved}"}, status=200)
    c("PUT", "/api/v1/inbounds/conf-in", {"type": "http", "listen": f"127.0.0.1:{moved}"}, status=200)
    c("PUT", "/api/v1/inbounds/nothing", {"type": "http", "listen": f"127.0.0.1:{port}"}, status=404)
    c("DELETE", "/api/v1/inbounds/conf-in", status=204)
    c("DELETE", "/api/v1/inbounds/conf-in", status=404)


def test_traffic_stats(node, spec):
    c = lambda *a, **k: call(node, spec, *a, **{"headers": TS, **k})  # noqa: E731
    _, traffic = c("GET", "/traffic", status=200)
    _, online = c("GET", "/online", status=200)
    assert online.get("holder")
    _, dump = c("GET", "/dump/streams", status=200)
    c("GET", "/dump/streams", headers={**TS, "Accept": "text/plain"}, status=200)
    c("GET", "/traffic?clear=1", status=200)
    c("POST", "/kick", [], status=200)
    c("POST", "/kick", {"ids": 1}, status=400)
    c("GET", "/traffic", headers={}, status=401)


def test_stream_api_and_media_listener(node, spec, origin):
    c = lambda *a, **k: call(node, spec, *a, **{"headers": MEDIA, **k})  # noqa: E731
    _, created = c("POST", "/streams", {"url": origin.base + "/live.ts",
                                        "failover_urls": [origin.base + "/live2.ts"],
                                        "metadata": {"channel": "conf", "id": "1"}}, status=200)
    sid = created["stream_id"]
    c("POST", "/streams", {"url": "ftp://nowhere"}, status=422)
    c("POST", "/streams", [1], status=422)
    c("GET", "/streams", headers={}, status=401)
    c("GET", "/streams", headers={"X-API-Token": "wrong"}, status=403)
    # A viewer on the media listener, held while the figures are read.
    path = f"/stream/{sid}"
    first_bytes(node.media_url, spec, "HEAD", path)
    host = node.media_url.removeprefix("http://")
    viewer = HTTPConnection(host, timeout=10)
    viewer.request("GET", path + "?username=conf-viewer")
    resp = viewer.getresponse()
    spec.check("GET", path, resp.status, resp.headers, resp.read1(4096))
    try:
        wait_until(lambda: node.get("/clients", headers=MEDIA).json()["total_clients"], what="a viewer")
        c("GET", "/streams", status=200)
        _, item = c("GET", f"/streams/{sid}", status=200)
        c("GET", "/streams/nope", status=404)
        c("GET", "/streams/by-metadata?field=channel&value=conf&active_only=false", status=200)
        c("GET", "/streams/by-metadata?field=channel", status=422)
        c("GET", "/stats", status=200)
        c("GET", "/stats/detailed", status=200)
        c("GET", "/stats/performance", status=200)
        c("GET", "/stats/streams", status=200)
        _, clients = c("GET", "/stats/clients", status=200)
        c("GET", "/clients", status=200)
        cid = clients["clients"][0]["client_id"]
        c("GET", f"/clients/{cid}", status=200)
        c("GET", "/clients/nobody", status=404)
        c("GET", "/health", status=200)
        c("GET", "/", headers={**MEDIA, "Accept": "application/json"}, status=200)
        c("GET", "/info", status=200)
        c("GET", "/transcode/profiles", status=200)
        c("POST", f"/streams/{sid}/failover", status=200)
        c("DELETE", f"/hls/{sid}/clients/{cid}", status=200)
    finally:
        viewer.close()
    c("POST", "/test-connection", {"url": origin.base + "/missing"}, status=200)
    c("POST", "/test-connection", {}, status=422)
    _, plain = c("POST", "/streams", {"url": origin.base + "/live3.ts"}, status=200)
    c("POST", f"/streams/{plain['stream_id']}/failover", status=400)
    c("POST", "/transcode", {"url": origin.base + "/live4.ts", "profile": "720p"}, status=200)
    c("POST", "/transcode", {"url": origin.base + "/live4.ts", "profile": "nope"}, status=400)
    _, listing = c("GET", "/streams", status=200)
    assert any("profile" in st for st in listing["streams"]), "a transcoded stream is listed"
    hook = f"http://127.0.0.1:{free_tcp_port()}/hook"
    c("POST", "/webhooks", {"url": hook, "events": ["stream_started"], "timeout": 1,
                            "retry_attempts": 0}, status=200)
    c("GET", "/webhooks", status=200)
    c("POST", f"/webhooks/test?webhook_url={hook}", status=200)
    c("DELETE", f"/webhooks?webhook_url={hook}", status=200)
    c("DELETE", f"/webhooks?webhook_url={hook}", status=404)
    c("DELETE", "/streams/oldest-by-metadata?field=channel&value=none", status=200)
    c("DELETE", "/streams/by-metadata?field=channel&value=conf", status=200)
    c("DELETE", f"/streams/{plain['stream_id']}", status=200)
    c("DELETE", f"/streams/{plain['stream_id']}", status=404)
    first_bytes(node.media_url, spec, "GET", "/stream/nope", status=404)
    # HLS: the playlist rewritten through the node, and its segment.
    _, hls = c("POST", "/streams", {"url": origin.base + "/hls/index.m3u8"}, status=200)
    playlist = f"/hls/{hls['stream_id']}/playlist.m3u8"
    r = http("GET", node.media_url + playlist)
    spec.check("GET", playlist, r.status, r.headers, r.body)
    assert r.status == 200, r.body
    segment = next(line for line in r.text.splitlines() if line and not line.startswith("#"))
    segment = "/" + segment.split("://", 1)[-1].split("/", 1)[1] if "://" in segment else segment
    if not segment.startswith("/"):
        segment = playlist.rsplit("/", 1)[0] + "/" + segment
    r = http("GET", node.media_url + segment)
    spec.check("GET", segment, r.status, r.headers, r.body)
    assert r.status == 200 and r.body.startswith(b"\x47"), (segment, r.status, r.body[:100])
    alias = segment.replace("/segment.ts?", "/segment?")          # m3u-proxy's name of the route
    assert alias != segment, segment
    r = http("GET", node.media_url + alias)
    spec.check("GET", alias, r.status, r.headers, r.body)
    assert r.status == 200, (alias, r.status)
    c("DELETE", f"/streams/{hls['stream_id']}", status=200)


def test_hy2scale(node, spec):
    base = "/scale/api"
    _, login = call(node, spec, "POST", base + "/login",
                    {"username": "admin", "password": hashlib.sha256(b"admin").hexdigest()}, status=200)
    auth = {"Authorization": f"Bearer {login['token']}"}
    call(node, spec, "POST", base + "/login", {"username": "admin", "password": "0" * 64}, status=401)
    call(node, spec, "POST", base + "/login", {"username": "admin"}, status=400)
    c = lambda m, p, *a, **k: call(node, spec, m, base + p, *a, **{"headers": auth, **k})  # noqa: E731
    c("GET", "/users", headers={}, status=401)
    _, sessions = c("GET", "/sessions", status=200)
    assert sessions["devices"], "the held Hysteria 2 connection is a device"
    for path in ("/build-id", "/build-info", "/settings/ui", "/topology", "/stats", "/users/conflicts",
                 "/ss", "/system/arch", "/diag/resolve?name=localhost", "/diag/peer-health",
                 "/diag/peer-rebinds", "/diag/peer-latency", "/proxies", "/tls", "/rules", "/diag/paths",
                 "/users", "/sessions", "/node", "/node/traffic", "/graph-layout", "/clients", "/peers",
                 "/backup"):
        c("GET", path, status=200)
    c("GET", "/diag/resolve", status=400)
    # A peer's UI through the mesh: this node's own refusals (no such peer, no chain).
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        body = {} if method in ("POST", "PUT", "PATCH") else None
        call(node, spec, method, "/scale/remote", body, status=400)
        call(node, spec, method, "/scale/remote/nope/scale/api/build-id", body, status=502)
    call(node, spec, "GET", "/scale/remote/scale/api/node", status=400)
    c("PUT", "/settings/ui", {"session_timeout_h": 12, "dns": "9.9.9.9", "listen": "0.0.0.0:1",
                              "unknown": 1}, status=200)
    c("PUT", "/settings/ui", {"session_timeout_h": "long"}, status=400)
    c("POST", "/check-ports", {"ports": [{"port": node.control_port, "proto": "tcp", "desc": "api"}, 1]},
      status=200)
    c("POST", "/settings/check-ports", [free_tcp_port()], status=200)
    c("POST", "/check-ports", {"ports": [0]}, status=400)
    # Users
    _, user = c("POST", "/users", {"username": "conf-u", "password": "pw", "traffic_limit_gb": 1.5,
                                   "expiry_date": "2031-01-01"}, status=201)
    uid = user["id"]
    c("POST", "/users", {"username": "conf-u", "password": "pw2"}, status=409)
    c("GET", f"/users/{uid}", status=200)
    c("PUT", f"/users/{uid}", {"password": "pw3"}, status=200)
    c("PUT", f"/users/{uid}/toggle", {"enabled": False}, status=200)
    c("POST", f"/users/{uid}/toggle", status=200)
    c("PUT", f"/users/{uid}/reset-traffic", status=200)
    c("POST", f"/users/{uid}/reset-traffic", status=200)
    c("GET", "/users/ffffffff", status=404)
    c("PUT", "/users/holder", {"password": "x"}, status=409)
    # Clients (outbound peers), rules through them, nested flags
    _, peer = c("POST", "/clients", {"name": "conf-peer", "addr": "127.0.0.1:9", "password": "peerpass",
                                     "max_tx": 1_250_000}, status=201)
    c("POST", "/clients", {"name": "bad name!", "addr": "x"}, status=400)
    c("GET", "/clients/conf-peer", status=200)
    c("PUT", "/clients/conf-peer", {"sni": "peer.example"}, status=200)
    c("PUT", "/clients/conf-peer/disable", {"disabled": True}, status=200)
    c("POST", "/clients/conf-peer/disable", {"disabled": False}, status=200)
    c("GET", "/peers/conf-peer/peers", status=200)
    c("GET", "/peers/nobody/peers", status=400)
    c("PUT", "/peers/conf-peer/nested", {"enabled": False}, status=200)
    c("PUT", "/peers/conf-peer/disable", {}, status=501)
    _, rule = c("POST", "/rules", {"name": "r", "type": "domain", "targets": ["example.com"],
                                   "exit_via": "conf-peer"}, status=200)
    c("POST", "/rules", {"name": "r", "type": "domain", "targets": ["example.com"]}, status=400)
    c("GET", f"/rules/{rule['id']}", status=200)
    c("PUT", f"/rules/{rule['id']}", {"name": "r2", "type": "ip", "targets": ["10.0.0.0/8"],
                                      "exit_via": "conf-peer"}, status=200)
    c("PUT", f"/rules/{rule['id']}/toggle", {"enabled": True}, status=200)
    c("GET", "/topology", status=200)
    c("GET", "/peers", status=200)
    c("GET", "/diag/peer-health", status=200)
    c("GET", "/diag/peer-latency", status=200)
    c("GET", "/diag/peer-rebinds", status=200)
    _, backup = c("GET", "/backup", status=200)
    c("DELETE", f"/rules/{rule['id']}", status=200)
    c("DELETE", f"/rules/{rule['id']}", status=404)
    c("DELETE", "/clients/conf-peer", status=200)
    c("GET", "/clients/conf-peer", status=404)
    # Proxies and the Shadowsocks tab
    pid = "conf-socks"
    c("POST", "/proxies", {"id": pid, "protocol": "socks5", "listen": f"127.0.0.1:{free_tcp_port()}",
                           "enabled": False}, status=200)
    c("POST", "/proxies", {"id": pid, "protocol": "socks5", "listen": "127.0.0.1:1"}, status=409)
    c("GET", f"/proxies/{pid}", status=200)
    c("PUT", f"/proxies/{pid}", {"enabled": False, "listen": f"127.0.0.1:{free_tcp_port()}"}, status=200)
    c("GET", "/proxies", status=200)
    c("DELETE", f"/proxies/{pid}", status=200)
    c("GET", f"/proxies/{pid}", status=404)
    c("PUT", "/ss", {"listen": f"127.0.0.1:{free_tcp_port()}", "enabled": False}, status=200)
    c("GET", "/ss", status=200)
    # Certificates
    c("POST", "/tls/generate", {"id": "conf-ca", "name": "CA", "domains": ["ca.example"], "is_ca": True},
      status=200)
    c("POST", "/tls/sign", {"ca_id": "conf-ca", "id": "conf-leaf", "name": "leaf", "cn": "leaf.example"},
      status=200)
    c("POST", "/tls/generate", {"id": "conf-x", "domains": []}, status=400)
    c("GET", "/tls", status=200)
    _, pem = c("GET", "/tls/conf-leaf/pem", status=200)
    c("POST", "/tls/import", {"id": "conf-imported", "name": "imported", "cert": pem["cert"]}, status=200)
    c("POST", "/tls/import", {"id": "conf-bad", "cert": "not a PEM"}, status=400)
    folder = node.data_dir / "tls-import"
    folder.mkdir(exist_ok=True)
    (folder / "leaf.crt").write_text(pem["cert"])
    c("POST", "/tls/import-path", {"id": "conf-path", "cert_path": str(folder / "leaf.crt")}, status=200)
    c("POST", "/tls/import-path", {"id": "conf-path2", "cert_path": "/etc/passwd"}, status=400)
    c("DELETE", "/tls/conf-leaf", status=200)
    c("DELETE", "/tls/conf-leaf", status=404)
    # Node, layout, sessions, internal peers, restore, what is not supported
    c("PUT", "/node", {"name": "conf-node", "exit_node": True}, status=200)
    c("PUT", "/node", {"colour": "red"}, status=400)
    c("PUT", "/graph-layout", {"positions": {"a": {"x": 1, "y": 2.5}}}, status=200)
    first_bytes(node.base_url, spec, "GET", f"{base}/graph-layout/stream?token={login['token']}")
    c("DELETE", "/sessions/nope", status=404)
    call(node, spec, "GET", base + "/internal/peers", status=403)
    c("POST", "/restore", backup, status=200)
    c("POST", "/restore", {"format": "nope"}, status=400)
    c("DELETE", f"/users/{uid}", status=200)
    c("DELETE", f"/users/{uid}", status=404)
    for prefix in ("/l2tp", "/ikev2", "/wireguard", "/upgrade"):
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            c(method, prefix, {} if method in ("POST", "PUT", "PATCH") else None, status=501)
    c("PUT", "/settings/password", {"current_password": "0" * 64, "new_password": "1" * 64}, status=403)


def test_reload(node, spec):
    """Last: a reload restarts the control API processes."""
    call(node, spec, "POST", "/api/v1/reload", headers=NATIVE, status=200)
    node.wait_healthy()


def test_every_face_was_exercised(spec):
    """An operation the tests above never called would make this module say less than it
    seems: every operation of the document was called and its answer checked."""
    doc = spec.doc
    ops = {(m.upper(), p): op for p, item in doc["paths"].items() for m, op in item.items()
           if isinstance(op, dict) and "responses" in op}
    seen = spec.operations()
    tags = {op["tags"][0] for op in ops.values()}
    seen_tags = {ops[key]["tags"][0] for key in seen}
    assert seen_tags == tags, f"faces never checked: {sorted(tags - seen_tags)}"
    missing = sorted(set(ops) - seen)
    assert not missing, f"{len(seen)} of {len(ops)} operations checked; not: {missing}"
    # And every GET answered 2xx with msgpack on offer was read in msgpack too.
    offered = {(a.method, a.template) for a in spec.checked if a.method == "GET" and 200 <= a.status < 300
               and "application/msgpack" in (ops[(a.method, a.template)]["responses"][str(a.status)]
                                             .get("content") or {})}
    in_msgpack = {(a.method, a.template) for a in spec.checked if a.media_type == "application/msgpack"}
    assert offered and offered <= in_msgpack, sorted(offered - in_msgpack)
