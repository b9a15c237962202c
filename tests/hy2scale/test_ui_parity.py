"""What the HY2 SCALE web UI reads and sends, route by route, against real nodes.

Each fact is taken from the reference's public source (``internal/api/server.go`` and its
handlers for the shapes, ``web/app`` for what the UI reads and sends): the topology and stats
the Nodes page polls, client units (bytes/s; the UI sends Mbit/s x 125000) and its tuning
fields, the masked password sent back by the edit form, the whole ``settings/ui`` document
(unknown keys ignored), ``/users/conflicts`` not taken for a user id, ``/ss``,
``/system/arch``, ``/diag/*``, ``check-ports`` in both body shapes, and the "not available"
answers.  Random bodies on every new or changed route: a 4xx with a message, never a 500,
nothing half-applied.
"""
from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastpath.hy2.client.client import simple_client
from fastpath.worker.event_loop import run
from tests.hy2scale.conftest import SCALE, ScaleClient
from tests.hy2scale.test_exits import MB, make_user, upload_hash
from tests.support.node import NodeProcess, free_tcp_port

pytestmark = pytest.mark.integration

MBIT = 125_000


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """B is an exit (user ``peeruser``), A dials it as client ``b`` with a 100 Mbit/s up,
    40 Mbit/s down bandwidth as the UI sends it (bytes/s)."""
    with NodeProcess(tmp_path_factory.mktemp("ui-b"), {"scale": dict(SCALE)}) as b, \
            NodeProcess(tmp_path_factory.mktemp("ui-a"), {"scale": dict(SCALE)}) as a:
        a.hy2, b.hy2 = a.config["listen"], b.config["listen"]
        a.scale, b.scale = ScaleClient(a), ScaleClient(b)
        assert b.scale("POST", "/users", {"username": "peeruser", "password": "pw-peer"}).status == 201
        r = a.scale("POST", "/clients", {"name": "b", "addr": b.hy2, "password": "peeruser:pw-peer",
                                         "insecure": True, "max_tx": 100 * MBIT, "max_rx": 40 * MBIT})
        assert r.status == 201, r.text
        yield a, b


def topology_peer(a, name, until=lambda p: True, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        topo = a.scale.get("/topology").json()
        peer = next(p for p in topo if p["name"] == name)
        if until(peer) or time.monotonic() > deadline:
            return topo, peer
        time.sleep(0.3)


# -- topology and stats -----------------------------------------------------------------------

def test_topology_self_first_then_outbound_peers(pair):
    a, b = pair
    topo, peer = topology_peer(a, "b", lambda p: p["connected"])
    me = topo[0]
    node = a.scale.get("/node").json()
    assert me["is_self"] is True and me["direction"] == "local" and me["connected"] is True
    assert me["name"] == node["node_id"] and me["node_id"] == node["node_id"]
    assert me["addr"] == a.hy2 and me["latency_ms"] == 0
    assert isinstance(me["children"], list)          # inbound peers
    assert [p["is_self"] for p in topo[1:]] == [False] * (len(topo) - 1)
    assert peer["direction"] == "outbound" and peer["connected"] is True and peer["disabled"] is False
    assert peer["addr"] == b.hy2 and peer["addrs"] == [b.hy2]
    assert type(peer["latency_ms"]) is int and 0 <= peer["latency_ms"] < 1000
    assert peer["max_rate"] == 100 * MBIT                    # bytes/s: max(max_tx, max_rx)
    assert type(peer["tx_rate"]) is int and type(peer["rx_rate"]) is int
    assert peer["children"] == []


def test_topology_disconnected_peer_has_latency_minus_one(pair):
    a, _b = pair
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    assert a.scale("POST", "/clients", {"name": "gone", "addr": f"127.0.0.1:{dead}", "password": "x",
                                        "insecure": True}).status == 201
    try:
        _topo, peer = topology_peer(a, "gone")
        assert peer["connected"] is False and peer["latency_ms"] == -1 and peer["max_rate"] == 0
        a.scale("PUT", "/clients/gone/disable", {"disabled": True})
        _topo, peer = topology_peer(a, "gone")
        assert peer["disabled"] is True and peer["connected"] is False
    finally:
        assert a.scale("DELETE", "/clients/gone").status == 200


def test_stats_cards_count_bytes_rates_and_connections(pair, targets):
    a, _b = pair
    make_user(a.scale, "stan", exit_via="b")
    first = a.scale.get("/stats").json()
    assert set(first) == {"tx_bytes", "rx_bytes", "tx_rate", "rx_rate", "conns", "exit_clients"}
    assert all(type(v) is int for v in first.values())

    async def main():
        client = simple_client(a.hy2, "stan:pw-stan")
        await client.connect()
        time.sleep(0.6)
        during = await asyncio.to_thread(a.scale.get, "/stats")
        assert await upload_hash(client, targets.sink, 4 * MB)
        after = await asyncio.to_thread(a.scale.get, "/stats")
        topo = await asyncio.to_thread(a.scale.get, "/topology")
        await client.close()
        return during.json(), after.json(), topo.json()
    during, after, topo = run(main())
    assert during["conns"] >= 1
    moved = (after["tx_bytes"] + after["rx_bytes"]) - (first["tx_bytes"] + first["rx_bytes"])
    assert moved >= 4 * MB
    assert after["tx_rate"] + after["rx_rate"] > 0           # the upload in the last seconds
    peer = next(p for p in topo if p["name"] == "b")
    assert peer["tx_rate"] + peer["rx_rate"] > 0


# -- clients: units, tuning fields, masked password -------------------------------------------

def test_client_rates_are_bytes_per_second_and_tuning_fields_round_trip(pair):
    a, b = pair
    body = {"name": "tune", "addr": b.hy2, "addrs": [b.hy2, "127.0.0.1:9"], "password": "peeruser:pw-peer",
            "insecure": True, "max_tx": 250 * MBIT, "max_rx": 30 * MBIT, "bbr_profile": "aggressive",
            "fast_open": True, "init_stream_window": 4 << 20, "max_stream_window": 8 << 20,
            "init_conn_window": 10 << 20, "max_conn_window": 20 << 20, "conn_mode": "quality"}
    r = a.scale("POST", "/clients", body)
    assert r.status == 201, r.text
    try:
        got = a.scale.get("/clients/tune").json()
        for key in ("max_tx", "max_rx", "bbr_profile", "fast_open", "init_stream_window", "max_stream_window",
                    "init_conn_window", "max_conn_window", "conn_mode"):
            assert got[key] == body[key], key
        assert got["addrs"] == [b.hy2, "127.0.0.1:9"]            # every address, addr first
        assert set(got["not_applied"]) >= {"bbr_profile", "conn_mode"}
        # What the workers read: whole Mbit/s, the exact bytes/s kept beside it.
        row = next(c for c in a.scale.get("/backup").json()["clients"] if c["name"] == "tune")
        assert row["max_tx"] == 250 and "max_tx_bps" not in row and row["addrs"] == ["127.0.0.1:9"]
        _topo, peer = topology_peer(a, "tune")
        assert peer["max_rate"] == 250 * MBIT
        # Not whole Mbit/s still round-trips exactly.
        r = a.scale("PUT", "/clients/tune", {"max_rx": 1_000})
        assert r.status == 200 and r.json()["max_rx"] == 1_000
        row = next(c for c in a.scale.get("/backup").json()["clients"] if c["name"] == "tune")
        assert row["max_rx"] == 1 and row["max_rx_bps"] == 1_000      # the workers announce 1 Mbit/s
        assert a.scale("PUT", "/clients/tune", {"max_rx": 2 * MBIT}).json()["max_rx"] == 2 * MBIT
        assert a.scale("PUT", "/clients/tune", {"bbr_profile": "fast"}).status == 400
        assert a.scale("PUT", "/clients/tune", {"max_tx": 100_000 * MBIT + 1}).status == 400
    finally:
        assert a.scale("DELETE", "/clients/tune").status == 200


def test_masked_password_sent_back_on_edit_keeps_the_password(pair, targets):
    a, _b = pair
    listed = next(c for c in a.scale.get("/clients").json() if c["name"] == "b")
    assert listed["password"] != "peeruser:pw-peer" and "*" in listed["password"]
    # The UI's edit form sends back everything it was given, with one change.
    form = {k: listed[k] for k in ("name", "addr", "password", "sni", "insecure", "max_tx", "max_rx")}
    form["max_rx"] = 50 * MBIT
    r = a.scale("PUT", "/clients/b", form)
    assert r.status == 200, r.text
    assert r.json()["max_rx"] == 50 * MBIT and r.json()["password"] == listed["password"]
    row = next(c for c in a.scale.get("/backup").json()["clients"] if c["name"] == "b")
    assert row["password"] == "peeruser:pw-peer"
    # And the peer still authenticates: traffic goes through b.
    make_user(a.scale, "mask", exit_via="b")

    async def main():
        client = simple_client(a.hy2, "mask:pw-mask")
        await client.connect()
        ok = await upload_hash(client, targets.sink, 200_000)
        await client.close()
        return ok
    assert run(main())


# -- settings/ui --------------------------------------------------------------------------------

UI_KEYS = {"listen", "base_path", "dns", "force_https", "https_cert_id", "session_timeout_h",
           "max_nested_depth", "max_response_nodes", "max_cache_entries", "max_response_bytes",
           "max_fetch_fan_out", "relay_admin_passthrough", "dns_resolver_enabled", "dns_resolver_cache_ttl",
           "dns_resolver_negative_ttl", "dns_resolver_cache_size", "dns_resolver_query_timeout_ms"}


def test_settings_ui_document_has_the_reference_keys(node, scale):
    doc = scale.get("/settings/ui").json()
    assert UI_KEYS <= set(doc) and "port" not in doc
    assert doc["listen"].endswith(f":{node.control_port}") and doc["base_path"] == "/scale"
    assert doc["force_https"] is False and doc["https_cert_id"] == ""
    assert scale("PUT", "/settings/ui", {"dns": ""}).status == 200
    assert scale.get("/settings/ui").json()["dns"] == "8.8.8.8,1.1.1.1"      # the reference's "none set"
    assert doc["max_nested_depth"] == 5 and doc["max_fetch_fan_out"] == 8
    assert doc["dns_resolver_enabled"] is True and doc["dns_resolver_cache_size"] == 0


def test_settings_ui_put_whole_document_back_with_unknown_keys(node, scale):
    doc = scale.get("/settings/ui").json()
    # The general form, as the UI sends it, plus keys this node has never heard of.
    body = dict(doc, session_timeout_h=3, dns_resolver_cache_size=2048, max_nested_depth=99,
                future_knob=1, port=1)
    r = scale("PUT", "/settings/ui", body)
    assert r.status == 200, r.text
    out = r.json()
    assert out["session_timeout_h"] == 3 and "session_timeout_h" in out["applied"]
    assert sorted(out["ignored"]) == ["future_knob", "port"]
    assert "dns_resolver_cache_size" in out["not_applicable"]
    assert out["max_nested_depth"] == 10                       # clamped like the reference
    assert "listen" not in out["not_applicable"]               # sent back unchanged
    again = scale.get("/settings/ui").json()
    assert again["dns_resolver_cache_size"] == 2048 and again["session_timeout_h"] == 3
    # A different listen is not applied, and says why; the document keeps the real one.
    r = scale("PUT", "/settings/ui", {"listen": "0.0.0.0:1"})
    assert r.status == 200 and "listen" in r.json()["not_applicable"]
    assert scale.get("/settings/ui").json()["listen"] == doc["listen"]
    # Null (an empty number field) changes nothing; a wrong type changes nothing at all.
    assert scale("PUT", "/settings/ui", {"session_timeout_h": None}).json()["session_timeout_h"] == 3
    r = scale("PUT", "/settings/ui", {"dns": "9.9.9.9", "session_timeout_h": "x"})
    assert r.status == 400 and "session_timeout_h" in r.json()["message"]
    assert scale.get("/settings/ui").json()["dns"] != "9.9.9.9"
    assert scale("PUT", "/settings/ui", {"session_timeout_h": 12}).status == 200


def test_session_timeout_h_is_the_token_lifetime(tmp_path):
    with NodeProcess(tmp_path, {"scale": dict(SCALE)}) as n:
        c = ScaleClient(n)
        assert c("PUT", "/settings/ui", {"session_timeout_h": 1}).status == 200
        row = n.get("/scale/api/settings/ui", headers={"Authorization": f"Bearer {c.token}"}).json()
        assert row["session_timeout"] == 3600 and row["session_timeout_h"] == 1


# -- the smaller routes ------------------------------------------------------------------------

def test_users_conflicts_is_not_a_user_id(scale):
    r = scale.get("/users/conflicts")
    assert r.status == 200 and r.json() == {}
    assert scale.get("/users/nosuchid").status == 404


def test_ss_system_arch_and_diag(node, scale):
    ss = scale.get("/ss").json()
    assert {"listen", "enabled", "method"} <= set(ss) and ss["enabled"] is False and ss["listen"] == ""
    assert scale("PUT", "/ss", {"enabled": "yes"}).status == 400
    assert scale("PUT", "/ss", {"enabled": True, "method": "rc4"}).status == 400
    assert scale.get("/ss").json() == ss                                # nothing applied
    port = free_tcp_port()
    r = scale("PUT", "/ss", {"listen": f"127.0.0.1:{port}", "enabled": True, "method": "aes-256-gcm"})
    assert r.status == 200, r.text
    ss = scale.get("/ss").json()
    assert ss["listen"] == f"127.0.0.1:{port}" and ss["enabled"] is True and ss["method"] == "aes-256-gcm"
    socket.create_connection(("127.0.0.1", port), 2).close()            # listening, live
    assert scale("PUT", "/ss", {"enabled": False}).status == 200
    assert scale.get("/ss").json()["enabled"] is False
    assert scale("DELETE", "/proxies/ss").status == 200
    arch = scale.get("/system/arch").json()
    assert {"os", "arch", "version", "binary", "in_docker"} <= set(arch)
    assert isinstance(arch["in_docker"], bool)
    r = scale.get("/diag/resolve?name=localhost")
    assert r.status == 200 and r.json()["name"] == "localhost" and r.json()["ips"], r.text
    assert scale.get("/diag/resolve").status == 400
    assert scale.get("/diag/resolve?name=a%20b").status == 400
    for kind in ("peer-health", "peer-rebinds", "peer-latency"):
        r = scale.get(f"/diag/{kind}")
        assert r.status == 200 and isinstance(r.json()["peers"], list), kind


def test_diag_peer_rows_per_client(pair):
    a, _b = pair
    topology_peer(a, "b", lambda p: p["connected"])
    health = {p["name"]: p for p in a.scale.get("/diag/peer-health").json()["peers"]}
    assert health["b"]["direction"] == "outbound" and health["b"]["connected"] is True
    lat = {p["name"]: p for p in a.scale.get("/diag/peer-latency").json()["peers"]}
    assert type(lat["b"]["latency_ms"]) is int and lat["b"]["latency_ms"] >= 0
    reb = {p["name"]: p for p in a.scale.get("/diag/peer-rebinds").json()["peers"]}
    assert reb["b"]["rebind_checks"] == 0


def test_check_ports_takes_the_reference_shapes(node, scale):
    busy = {"port": node.control_port, "proto": "tcp", "desc": "control"}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    free_entry = {"port": free, "proto": "tcp", "desc": "x"}
    for body in ([busy, free_entry], {"ports": [busy, free_entry]}):
        r = scale("POST", "/check-ports", body)
        assert r.status == 200, r.text
        assert r.json()["conflicts"] == [busy]
        assert r.json()["results"] == {str(node.control_port): False, str(free): True}
    assert scale("POST", "/check-ports", [{"port": 1, "proto": "sctp"}]).status == 400


def test_not_available_answers(scale):
    rules = scale.get("/rules")                     # served now (tests/mesh)
    assert rules.status == 200 and rules.json()["available"] is True
    for method, path in (("GET", "/l2tp"),
                         ("GET", "/wireguard")):
        r = scale(method, path, {} if method != "GET" and method != "DELETE" else None)
        assert r.status == 501, (method, path, r.text)
        assert r.json()["capable"] is False and r.json()["error"], (method, path)
    assert scale.get("/proxies").json() == []          # no inbounds in this node's config


# -- random bodies ----------------------------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                    max_leaves=12)
KEYS = st.sampled_from(sorted(UI_KEYS | {"session_timeout", "ports", "port", "proto", "desc", "enabled",
                                         "method", "name", "addr", "max_tx", "max_rx", "bbr_profile",
                                         "fast_open", "conn_mode", "init_stream_window", "addrs", "x"}))
BODIES = st.one_of(JSON, st.dictionaries(KEYS, JSON, max_size=8), st.lists(st.dictionaries(KEYS, JSON, max_size=3),
                                                                            max_size=3))
ROUTES = [("PUT", "/settings/ui"), ("POST", "/check-ports"), ("PUT", "/ss"), ("POST", "/clients"),
          ("PUT", "/clients/fz"), ("POST", "/rules"), ("POST", "/proxies"), ("GET", "/topology"),
          ("GET", "/stats"), ("GET", "/users/conflicts")]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES, route=st.sampled_from(ROUTES))
def test_random_bodies_on_the_new_routes(node, scale, body, route):
    try:
        raw = json.dumps(body, allow_nan=True)
    except (ValueError, OverflowError):
        return
    if scale.get("/clients/fz").status == 404:
        assert scale("POST", "/clients", {"name": "fz", "addr": "127.0.0.1:9"}).status == 201
    before = scale.get("/backup").json()
    method, path = route
    r = node.request(method, "/scale/api" + path, raw.encode(),
                     headers={"Authorization": f"Bearer {scale.token}", "Content-Type": "application/json"})
    assert r.status < 500 or r.status == 501, (route, raw, r.text)
    answer = r.json()
    if 400 <= r.status < 500:
        assert answer.get("message") or answer.get("error"), r.text
    if r.status >= 400:                                  # refused: nothing changed
        after = scale.get("/backup").json()
        assert after["clients"] == before["clients"] and after["ui"] == before["ui"], (route, raw)
    for c in scale.get("/clients").json():
        if c["name"] != "fz":
            assert scale("DELETE", f"/clients/{c['name']}").status == 200
    scale("PUT", "/settings/ui", {"session_timeout_h": 12})


def test_toggle_sets_the_state_the_ui_sends(scale):
    uid = scale("POST", "/users", {"username": "togg", "password": "t"}).json()["id"]
    try:
        for wanted in (False, False, True, True):          # the same twice is not a flip
            r = scale("PUT", f"/users/{uid}/toggle", {"enabled": wanted})
            assert r.status == 200 and r.json()["enabled"] is wanted
        assert scale("PUT", f"/users/{uid}/toggle", {"enabled": "no"}).status == 400
        assert scale.get(f"/users/{uid}").json()["enabled"] is True
    finally:
        assert scale("DELETE", f"/users/{uid}").status == 200


def test_backup_carries_the_new_ui_keys(scale):
    assert scale("PUT", "/settings/ui", {"dns_resolver_cache_size": 4096, "relay_admin_passthrough": True,
                                         "max_fetch_fan_out": 16}).status == 200
    doc = scale.get("/backup").json()
    assert doc["ui"]["dns_resolver_cache_size"] == 4096 and doc["ui"]["max_fetch_fan_out"] == 16
    bad = json.loads(json.dumps(doc))
    bad["ui"]["dns_resolver_cache_size"] = "big"
    bad.pop("sha256", None)
    r = scale("POST", "/restore", bad)
    assert r.status == 400 and "dns_resolver_cache_size" in r.json()["message"], r.text
    assert scale("PUT", "/settings/ui", {"dns_resolver_cache_size": 0, "relay_admin_passthrough": False,
                                         "max_fetch_fan_out": 0}).status == 200
    r = scale("POST", "/restore", doc)
    assert r.status == 200, r.text
    ui = scale.get("/settings/ui").json()
    assert ui["dns_resolver_cache_size"] == 4096 and ui["relay_admin_passthrough"] is True
    assert scale("PUT", "/settings/ui", {"dns_resolver_cache_size": 0, "relay_admin_passthrough": False,
                                         "max_fetch_fan_out": 0}).status == 200


def test_ss_and_proxies_show_the_configured_inbounds(tmp_path):
    from tests.support.node import free_tcp_port
    ss_port, socks_port = free_tcp_port(), free_tcp_port()
    cfg = {"scale": dict(SCALE), "inbounds": [
        {"type": "shadowsocks", "listen": f"127.0.0.1:{ss_port}", "method": "aes-256-gcm", "tag": "ss-in"},
        {"type": "socks", "listen": f"127.0.0.1:{socks_port}", "tag": "socks-in"}]}
    with NodeProcess(tmp_path, cfg) as n:
        c = ScaleClient(n)
        ss = c.get("/ss").json()
        assert ss["listen"] == f"127.0.0.1:{ss_port}" and ss["enabled"] is True and ss["method"] == "aes-256-gcm"
        assert c("PUT", "/ss", dict(ss)).status == 200                   # the UI saving what it read
        r = c("PUT", "/ss", {"method": "chacha20-ietf-poly1305"})
        assert r.status == 501 and r.json()["capable"] is False
        assert c.get("/ss").json()["method"] == "aes-256-gcm"
        proxies = {p["protocol"]: p for p in c.get("/proxies").json()}
        assert proxies["socks5"]["listen"] == f"127.0.0.1:{socks_port}" and proxies["socks5"]["enabled"] is True
        assert proxies["shadowsocks"]["id"] == "ss-in"
