"""The native API's ``/api/v1/inbounds``: a SOCKS5 and a Shadowsocks inbound made over the API
while the node runs (two workers, no restart), used by curl and sing-box as a node user and
counted exactly; moved to another port live; removed, and the port closes.  Bad bodies answer
4xx with a message and change nothing (hypothesis), and a node.yaml inbound is listed and
cannot be changed (the control token on every route: tests/security)."""
from __future__ import annotations

import socket
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.inbounds.peers import listening, sing_box_moves_counted_bytes
from tests.support.node import NodeProcess, free_tcp_port

pytestmark = pytest.mark.integration

USER, SECRET = "nia", "nia-inbound-secret-0123456789"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    config_port = free_tcp_port()
    config = {"inbounds": [{"type": "http", "listen": f"127.0.0.1:{config_port}", "tag": "web-yaml"}]}
    with NodeProcess(tmp_path_factory.mktemp("native-inbounds"), config, workers=2) as n:
        assert n.post("/api/v1/users", {"id": USER, "auth_secret": SECRET}).status == 201
        n.config_port = config_port
        yield n


def curl_socks(port: int, password: str, target: int) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "10", "--socks5-hostname",
                           f"{USER}:{password}@127.0.0.1:{port}", f"http://127.0.0.1:{target}/"],
                          capture_output=True)


def listed(node) -> dict:
    r = node.get("/api/v1/inbounds")
    assert r.status == 200, r.text
    assert r.json()["total"] == len(r.json()["inbounds"])
    return {i["tag"]: i for i in r.json()["inbounds"]}


@pytest.fixture(scope="module")
def origin():
    from tests.hy2.test_stock_client import payload_server
    server, port = payload_server(b"made by /api/v1/inbounds\n" * 1000)
    yield port
    server.shutdown()


def test_a_socks5_inbound_made_by_the_api_serves_counts_moves_and_closes(node, targets, tmp_path, origin):
    port, moved = free_tcp_port(), free_tcp_port()
    r = node.post("/api/v1/inbounds", {"type": "socks", "listen": f"127.0.0.1:{port}", "tag": "socks-api"})
    assert r.status == 201, r.text
    assert r.json()["tag"] == "socks-api" and r.json()["managed_by"] == "api"
    assert listed(node)["socks-api"]["listen"] == f"127.0.0.1:{port}"
    # Served at once on both workers (several connections), with the node user's credentials.
    for _ in range(6):
        c = curl_socks(port, SECRET, origin)
        assert c.returncode == 0, c.stderr
        assert c.stdout.startswith(b"made by /api/v1/inbounds")
    assert curl_socks(port, "wrong", origin).returncode != 0
    # sing-box as the client: exact bytes on the user.
    outbound = {"type": "socks", "server": "127.0.0.1", "server_port": port, "version": "5",
                "username": USER, "password": SECRET}
    sing_box_moves_counted_bytes(node, USER, tmp_path, outbound, targets, 4 << 20, 7)
    # Moved live: the old port closes, the new one serves; the other keys are kept.
    r = node.request("PATCH", "/api/v1/inbounds/socks-api", {"listen": f"127.0.0.1:{moved}"})
    assert r.status == 200, r.text
    assert not listening(port)
    assert curl_socks(moved, SECRET, origin).returncode == 0
    assert node.get("/api/v1/inbounds/socks-api").json()["type"] == "socks"
    # Removed: the port closes, the tag is gone.
    assert node.request("DELETE", "/api/v1/inbounds/socks-api").status == 204
    assert not listening(moved)
    assert node.get("/api/v1/inbounds/socks-api").status == 404
    assert node.request("DELETE", "/api/v1/inbounds/socks-api").status == 404


@pytest.mark.parametrize("method", ["aes-256-gcm", "2022-blake3-aes-128-gcm"])
def test_a_shadowsocks_inbound_made_by_the_api_carries_sing_box(node, targets, tmp_path, method):
    from fastpath.inbounds.shadowsocks_2022 import user_key_text
    port = free_tcp_port()
    tag = f"ss-api-{method[:4]}"
    r = node.post("/api/v1/inbounds", {"type": "shadowsocks", "listen": f"127.0.0.1:{port}",
                                       "method": method, "tag": tag})
    assert r.status == 201, r.text
    password = user_key_text(SECRET, 16) if method.startswith("2022") else SECRET
    outbound = {"type": "shadowsocks", "server": "127.0.0.1", "server_port": port,
                "method": method, "password": password}
    sing_box_moves_counted_bytes(node, USER, tmp_path, outbound, targets, 4 << 20, 11)
    assert node.request("DELETE", f"/api/v1/inbounds/{tag}").status == 204
    assert not listening(port)


def test_the_node_yaml_inbound_is_listed_and_cannot_be_changed_here(node):
    item = listed(node)["web-yaml"]
    assert item["managed_by"] == "config" and item["listen"] == f"127.0.0.1:{node.config_port}"
    for method, body in (("PUT", {"type": "http", "listen": "127.0.0.1:1"}), ("PATCH", {"auth": False}),
                         ("DELETE", None)):
        r = node.request(method, "/api/v1/inbounds/web-yaml", body)
        assert r.status == 409, (method, r.text)
        assert "node.yaml" in r.json()["message"]
    assert listening(node.config_port)


def test_taken_names_and_ports_are_refused_whole(node):
    before = listed(node)
    r = node.post("/api/v1/inbounds", {"type": "socks", "listen": f"127.0.0.1:{node.config_port}"})
    assert r.status == 409 and "web-yaml" in r.json()["message"], r.text
    r = node.post("/api/v1/inbounds", {"type": "socks", "listen": f"127.0.0.1:{free_tcp_port()}",
                                       "tag": "web-yaml"})
    assert r.status == 409 and "node.yaml" in r.json()["message"], r.text
    r = node.post("/api/v1/inbounds", {"type": "socks", "listen": f"127.0.0.1:{node.control_port}"})
    assert r.status == 409, r.text
    with socket.socket() as busy:            # a port some other program holds
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        r = node.post("/api/v1/inbounds", {"type": "socks", "listen": f"127.0.0.1:{busy.getsockname()[1]}"})
        assert r.status == 409 and "not available" in r.json()["message"], r.text
    r = node.post("/api/v1/inbounds", {"type": "vless", "listen": "127.0.0.1:1", "security": "reality"})
    assert r.status == 400 and "REALITY" in r.json()["message"], r.text
    assert listed(node) == before


KEYS = ["type", "listen", "tag", "auth", "method", "psk", "fallback", "tls", "security",
        "transport", "flow", "bogus"]
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.floats(allow_nan=True),
                   st.text(max_size=20), st.sampled_from(["socks", "http", "shadowsocks", "trojan",
                                                          "vless", "vmess", "127.0.0.1:1", "::1:2",
                                                          "aes-256-gcm", "2022-blake3-aes-128-gcm"]),
                   st.lists(st.integers(), max_size=3),
                   st.dictionaries(st.sampled_from(["cert", "key", "certId", "type", "path", "x"]),
                                   st.one_of(st.text(max_size=8), st.integers(), st.none()), max_size=3))
BODIES = st.one_of(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6),
                   st.lists(st.integers(), max_size=2), st.text(max_size=10), st.integers())


@pytest.fixture(scope="module")
def target(node):
    entry = {"type": "socks", "listen": f"127.0.0.1:{free_tcp_port()}", "tag": "hyp-target"}
    assert node.post("/api/v1/inbounds", entry).status == 201
    yield entry
    node.request("DELETE", "/api/v1/inbounds/hyp-target")


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=BODIES, method=st.sampled_from(["POST", "PUT", "PATCH"]))
def test_bad_bodies_answer_4xx_with_a_message_and_change_nothing(node, target, body, method):
    """Random entries, new or replacing one made by the API: a 4xx with a message and the list
    as before, never a 500 (a valid one may pass: it serves, and is undone)."""
    before = listed(node)
    path = "/api/v1/inbounds" if method == "POST" else "/api/v1/inbounds/hyp-target"
    if isinstance(body, dict) and isinstance(body.get("listen"), str) and body["listen"].startswith("127"):
        body = {**body, "listen": f"127.0.0.1:{free_tcp_port()}"}
    r = node.request(method, path, body)
    assert r.status < 500, r.text
    if r.status < 300:
        tag = r.json()["tag"]
        assert listening(int(r.json()["listen"].rsplit(":", 1)[1]))
        if method == "POST":
            assert node.request("DELETE", f"/api/v1/inbounds/{tag}").status == 204
        else:
            assert node.request("PUT", path, target).status == 200
    else:
        assert 400 <= r.status < 500 and r.json().get("message"), r.text
    assert listed(node) == before
