"""HY2 SCALE ``/api/proxies``: SOCKS5, HTTP and Shadowsocks listeners made, moved, disabled and
removed through the API while the node runs (two workers, no restart), used by curl and
sing-box with a scale user's credentials, counted exactly on ``traffic_used``; bad bodies
answer 4xx and change nothing."""
from __future__ import annotations

import json
import socket
import struct
import subprocess
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastpath.inbounds.shadowsocks_2022 import user_key_text
from tests.hy2.singbox import recv_exact
from tests.hy2.test_stock_client import payload_server
from tests.hy2scale.conftest import SCALE, ScaleClient
from tests.inbounds.peers import counted_both_ways, download_and_upload, sing_box_client
from tests.support.node import NodeProcess, free_tcp_port

pytestmark = pytest.mark.integration

BODY = b"through a proxy made by the HY2 SCALE API\n" * 2000


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with NodeProcess(tmp_path_factory.mktemp("scale-proxies"), {"scale": dict(SCALE)}, workers=2) as n:
        n.scale = ScaleClient(n)
        r = n.scale("POST", "/users", {"username": "pia", "password": "pw-pia"})
        assert r.status == 201, r.text
        n.user = r.json()["id"]
        yield n


@pytest.fixture(scope="module")
def origin():
    server, port = payload_server(BODY)
    yield port
    server.shutdown()


def used(node) -> int:
    return node.scale.get(f"/users/{node.user}").json()["traffic_used"]


def wait_used(node, expected, timeout=5.0) -> int:
    deadline = time.monotonic() + timeout
    seen = used(node)
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        seen = used(node)
    return seen


def curl(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True)


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


def socks5_auth(port: int, user: str, password: str, target_port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), 10)
    s.sendall(b"\x05\x01\x02")
    assert recv_exact(s, 2) == b"\x05\x02"
    s.sendall(b"\x01" + bytes([len(user)]) + user.encode() + bytes([len(password)]) + password.encode())
    assert recv_exact(s, 2) == b"\x01\x00"
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", target_port))
    assert recv_exact(s, 10)[:2] == b"\x05\x00"
    return s


def test_a_socks5_proxy_made_by_the_api_serves_at_once_and_counts_exactly(node, origin, targets):
    port = free_tcp_port()
    r = node.scale("POST", "/proxies", {"protocol": "socks5", "listen": f"127.0.0.1:{port}", "enabled": True})
    assert r.status == 200, r.text
    pid = r.json()["id"]
    assert r.json()["status"] == "ok"
    listed = {p["id"]: p for p in node.scale.get("/proxies").json()}
    assert listed[pid]["protocol"] == "socks5" and listed[pid]["listen"] == f"127.0.0.1:{port}"
    assert listed[pid]["enabled"] is True and listed[pid]["managed_by"] == "api"
    # Right away (the answer came once every worker bound it), on both workers (many tries).
    for _ in range(6):
        c = curl("--socks5-hostname", f"pia:pw-pia@127.0.0.1:{port}", f"http://127.0.0.1:{origin}/")
        assert c.returncode == 0, c.stderr
        assert c.stdout == BODY
    bad = curl("--socks5-hostname", f"pia:wrong@127.0.0.1:{port}", f"http://127.0.0.1:{origin}/")
    assert bad.returncode != 0 and bad.stdout == b""
    # Exact bytes: 16 up (the source's request), n down.
    before, n = used(node), 3 << 20
    with socks5_auth(port, "pia", "pw-pia", targets.source) as s:
        s.sendall(struct.pack(">QQ", n, 5))
        got = 0
        while got < n:
            data = s.recv(1 << 20)
            assert data
            got += len(data)
    assert wait_used(node, before + 16 + n) == before + 16 + n
    assert node.scale("DELETE", f"/proxies/{pid}").status == 200


def test_an_http_proxy_moves_is_disabled_and_removed_live(node, origin):
    first, second = free_tcp_port(), free_tcp_port()
    r = node.scale("POST", "/proxies", {"id": "web", "protocol": "http", "listen": f"127.0.0.1:{first}",
                                        "enabled": True})
    assert r.status == 200, r.text
    c = curl("-x", f"http://pia:pw-pia@127.0.0.1:{first}", f"http://127.0.0.1:{origin}/")
    assert c.returncode == 0 and c.stdout == BODY, c.stderr
    assert curl("-x", f"http://127.0.0.1:{first}", "-o", "/dev/null", "-w", "%{http_code}",
                f"http://127.0.0.1:{origin}/").stdout == b"407"
    r = node.scale("PUT", "/proxies/web", {"listen": f"127.0.0.1:{second}"})      # moved
    assert r.status == 200, r.text
    assert not listening(first)
    c = curl("-x", f"http://pia:pw-pia@127.0.0.1:{second}", f"http://127.0.0.1:{origin}/")
    assert c.returncode == 0 and c.stdout == BODY, c.stderr
    assert node.scale.get("/proxies/web").json()["protocol"] == "http"      # the other fields kept
    assert node.scale("PUT", "/proxies/web", {"enabled": False}).status == 200
    assert not listening(second)
    assert node.scale("PUT", "/proxies/web", {"enabled": True}).status == 200
    assert listening(second)
    assert node.scale("DELETE", "/proxies/web").status == 200
    assert not listening(second)
    assert node.scale.get("/proxies/web").status == 404
    assert node.scale("DELETE", "/proxies/web").status == 404


@pytest.mark.parametrize("method", ["aes-256-gcm", "2022-blake3-aes-128-gcm"])
def test_a_shadowsocks_proxy_takes_the_users_password(node, targets, tmp_path, method):
    port = free_tcp_port()
    r = node.scale("POST", "/proxies", {"id": f"ss-{method[:4]}", "protocol": "shadowsocks",
                                        "listen": f"127.0.0.1:{port}", "method": method, "enabled": True})
    assert r.status == 200, r.text
    password = "pw-pia" if not method.startswith("2022") else user_key_text("pw-pia", 16)
    outbound = {"type": "shadowsocks", "server": "127.0.0.1", "server_port": port, "method": method,
                "password": password}
    size = 4 << 20
    before = used(node)
    with sing_box_client(tmp_path, outbound) as local:
        download_and_upload(local, targets, size, 61)
    tx, rx = counted_both_ways(size)
    assert wait_used(node, before + tx + rx) == before + tx + rx
    assert node.scale("DELETE", f"/proxies/ss-{method[:4]}").status == 200


def test_bad_bodies_answer_4xx_and_change_nothing(node):
    port = free_tcp_port()
    holder = socket.create_server(("127.0.0.1", 0))
    held = holder.getsockname()[1]
    before = node.scale.get("/proxies").json()
    cases = [
        ({"protocol": "socks5"}, 400, "listen"),
        ({"protocol": "gopher", "listen": f"127.0.0.1:{port}"}, 400, "protocol"),
        ({"protocol": "socks5", "listen": "nowhere"}, 400, "listen"),
        ({"protocol": "socks5", "listen": "127.0.0.1:70000"}, 400, "listen"),
        ({"protocol": "shadowsocks", "listen": f"127.0.0.1:{port}"}, 400, "method"),
        ({"protocol": "shadowsocks", "listen": f"127.0.0.1:{port}", "method": "rc4-md5"}, 400, "method"),
        ({"protocol": "http", "listen": f"127.0.0.1:{port}", "method": "aes-256-gcm"}, 400, "method"),
        ({"protocol": "socks5", "listen": f"127.0.0.1:{port}", "enabled": "yes"}, 400, "enabled"),
        ({"protocol": "socks5", "listen": f"127.0.0.1:{port}", "tls_cert": "no-such-cert"}, 400, "tls_cert"),
        ({"protocol": "socks5", "listen": f"127.0.0.1:{port}", "exit_via": "nobody"}, 400, "exit_via"),
        ({"protocol": "socks5", "listen": f"127.0.0.1:{port}", "exit_mode": "aggregate"}, 400, "exit_mode"),
        ({"protocol": "socks5", "listen": f"127.0.0.1:{port}", "id": "bad id!"}, 400, "id"),
        ({"protocol": "socks5", "listen": f"127.0.0.1:{node.control_port}", "enabled": True}, 409, "control"),
        ({"protocol": "socks5", "listen": f"127.0.0.1:{held}", "enabled": True}, 409, "not available"),
    ]
    try:
        for body, status, word in cases:
            r = node.scale("POST", "/proxies", body)
            assert r.status == status, (body, r.text)
            assert word in r.text, (body, r.text)
        assert node.scale("POST", "/proxies", [1, 2]).status == 400
        assert node.scale("POST", "/proxies", None, headers={"Content-Type": "application/json"}).status == 400
    finally:
        holder.close()
    assert node.scale.get("/proxies").json() == before
    assert not listening(port)
    # A duplicate id, and a port another API listener has
    r = node.scale("POST", "/proxies", {"id": "one", "listen": f"127.0.0.1:{port}", "enabled": True})
    assert r.status == 200, r.text
    assert node.scale("POST", "/proxies", {"id": "one", "listen": f"127.0.0.1:{free_tcp_port()}"}).status == 409
    r = node.scale("POST", "/proxies", {"id": "two", "listen": f"127.0.0.1:{port}"})
    assert r.status == 409 and "proxy one" in r.text
    r = node.scale("PUT", "/proxies/one", {"id": "other"})
    assert r.status == 400
    assert node.scale("DELETE", "/proxies/one").status == 200


ROW = st.fixed_dictionaries({}, optional={
    "id": st.one_of(st.none(), st.text(max_size=10), st.integers()),
    "protocol": st.one_of(st.sampled_from(["socks5", "http", "shadowsocks", "trojan", ""]), st.integers()),
    "listen": st.one_of(st.just("127.0.0.1:{port}"), st.text(max_size=12), st.integers(), st.none()),
    "enabled": st.one_of(st.booleans(), st.none(), st.text(max_size=3)),
    "method": st.one_of(st.sampled_from(["aes-256-gcm", "2022-blake3-aes-256-gcm", "none"]), st.none()),
    "tls_cert": st.one_of(st.none(), st.text(max_size=5)),
    "exit_via": st.one_of(st.none(), st.text(max_size=5)),
    "exit_paths": st.one_of(st.none(), st.lists(st.text(max_size=4), max_size=3), st.text(max_size=3)),
    "exit_mode": st.one_of(st.none(), st.sampled_from(["", "quality", "x"])),
    "x": st.integers(),
})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(ROW, st.lists(st.integers(), max_size=2), st.text(max_size=5)),
       route=st.sampled_from([("POST", "/proxies"), ("PUT", "/proxies/fz")]))
def test_random_bodies_never_500_and_a_refusal_changes_nothing(node, body, route):
    if isinstance(body, dict) and body.get("listen") == "127.0.0.1:{port}":
        body = {**body, "listen": f"127.0.0.1:{free_tcp_port()}"}
    before = node.scale.get("/proxies").json()
    r = node.scale(route[0], route[1], json.loads(json.dumps(body)))
    assert r.status < 500, (body, r.text)
    after = node.scale.get("/proxies").json()
    if r.status >= 400:
        assert after == before, (body, r.text)
        assert r.json().get("message"), r.text
    else:
        pid = r.json()["id"]
        assert node.scale("DELETE", f"/proxies/{pid}").status == 200
    assert node.scale.get("/proxies").json() == [p for p in before]


def test_an_http_proxy_in_tls_with_a_stored_certificate(node, origin):
    r = node.scale("POST", "/tls/generate", {"id": "proxy-cert", "name": "proxy", "domains": ["localhost"]})
    assert r.status in (200, 201), r.text
    port = free_tcp_port()
    r = node.scale("POST", "/proxies", {"id": "tls-web", "protocol": "http", "listen": f"127.0.0.1:{port}",
                                        "enabled": True, "tls_cert": "proxy-cert"})
    assert r.status == 200, r.text
    assert node.scale.get("/proxies/tls-web").json()["tls_cert"] == "proxy-cert"
    c = curl("--proxy", f"https://pia:pw-pia@127.0.0.1:{port}", "--proxy-insecure",
             f"http://127.0.0.1:{origin}/")
    assert c.returncode == 0, c.stderr
    assert c.stdout == BODY
    plain = curl("-x", f"http://pia:pw-pia@127.0.0.1:{port}", f"http://127.0.0.1:{origin}/")
    assert plain.returncode != 0 and plain.stdout != BODY          # TLS only
    r = node.scale("POST", "/proxies", {"protocol": "shadowsocks", "method": "aes-256-gcm",
                                        "listen": f"127.0.0.1:{free_tcp_port()}", "tls_cert": "proxy-cert"})
    assert r.status == 400 and "tls_cert" in r.text
    assert node.scale("DELETE", "/proxies/tls-web").status == 200


def test_a_restarted_worker_serves_the_api_listeners_again(tmp_path, origin):
    """The listeners are rows of the store, not state of a process: a worker killed with
    SIGKILL comes back (restarted by the supervisor) serving them."""
    import os
    import signal
    with NodeProcess(tmp_path, {"scale": dict(SCALE)}) as n:
        scale = ScaleClient(n)
        assert scale("POST", "/users", {"username": "rho", "password": "pw-rho"}).status == 201
        port = free_tcp_port()
        r = scale("POST", "/proxies", {"protocol": "socks5", "listen": f"127.0.0.1:{port}", "enabled": True})
        assert r.status == 200, r.text

        def worker_pid():
            return next(c["pid"] for c in n.get("/api/v1/node").json()["children"] if c.get("shard") == 0)
        victim = worker_pid()
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if worker_pid() not in (victim, None) and listening(port):
                    break
            except (OSError, StopIteration):
                pass
            time.sleep(0.2)
        c = curl("--socks5-hostname", f"rho:pw-rho@127.0.0.1:{port}", f"http://127.0.0.1:{origin}/")
        assert c.returncode == 0, c.stderr
        assert c.stdout == BODY
