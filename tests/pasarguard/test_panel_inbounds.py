"""PasarGuard Start builds the node's proxy inbounds from the panel's xray config.

The panel's own client (``pasarguard-node-bridge``) starts a node with one inbound of each
kind (SOCKS5, HTTP, Shadowsocks AEAD and 2022, Trojan over TLS and WebSocket, VLESS over TLS and
over WebSocket, VMess over TCP and WebSocket, and the Hysteria one, which is the node's own
listener), syncs users with their credentials (SOCKS5 and HTTP: the user's email and Hysteria
auth; Shadowsocks 2022: its Shadowsocks password as its key, as the panel's xray node has it),
and sing-box connects as those users (20 MiB both ways, SHA-256 equal, the user's bytes exact
in the panel's statistics); a user removed by a sync is cut within a second; an inbound
outside the user's list refuses it; REALITY and gRPC inbounds refuse the Start by name.
"""
from __future__ import annotations

import base64
import json
import struct
import time
import uuid

import pytest

from tests.hy2.singbox import socks5_connect
from tests.inbounds.peers import counted_both_ways, download_and_upload, sing_box_client
from tests.pasarguard.panel_client import (PanelClientUnavailable, PanelDriver, pasarguard_section,
                                           wait_tls_port)
from tests.support.node import NodeProcess, free_tcp_port

SIZE = 20 << 20
ALICE = {"email": "1.alice", "vless": str(uuid.uuid4()), "vmess": str(uuid.uuid4()),
         # A 16-byte key in base64: a password for AEAD, the user's key on 2022-blake3-aes-128-gcm.
         "trojan": "alice-trojan-pw", "ss": base64.b64encode(b"alice-ss-key-16b").decode(),
         "ss_method": "chacha20-ietf-poly1305",
         "auth": "alice-hy2-auth"}
SS2022_PSK = base64.b64encode(b"server-psk-16byt").decode()
BOB = {"email": "2.bob", "vless": str(uuid.uuid4()), "vmess": str(uuid.uuid4()),
       "trojan": "bob-trojan-pw", "ss": "bob-ss-pw", "ss_method": "aes-128-gcm"}


def xray_config(ports: dict, cert: str, key: str, extra=()) -> str:
    tls = {"security": "tls", "tlsSettings": {"certificates": [{"certificateFile": cert,
                                                                 "keyFile": key}]}}
    inbounds = [
        {"tag": "HY", "protocol": "hysteria", "port": 443},
        {"tag": "VLESS TLS", "protocol": "vless", "port": ports["VLESS TLS"], "listen": "127.0.0.1",
         "settings": {"clients": [], "decryption": "none"},
         "streamSettings": {"network": "tcp", **tls}},
        {"tag": "VLESS WS", "protocol": "vless", "port": ports["VLESS WS"], "listen": "127.0.0.1",
         "settings": {"clients": [], "decryption": "none"},
         "streamSettings": {"network": "ws", "wsSettings": {"path": "/vl", "host": "cdn.example"}}},
        {"tag": "VMESS TCP", "protocol": "vmess", "port": ports["VMESS TCP"], "listen": "127.0.0.1",
         "settings": {"clients": []}, "streamSettings": {"network": "tcp"}},
        {"tag": "VMESS WS TLS", "protocol": "vmess", "port": ports["VMESS WS TLS"],
         "listen": "127.0.0.1", "settings": {"clients": []},
         "streamSettings": {"network": "ws", "wsSettings": {"path": "/vm"}, **tls}},
        {"tag": "TROJAN", "protocol": "trojan", "port": ports["TROJAN"], "listen": "127.0.0.1",
         "settings": {"clients": []}, "streamSettings": {"network": "tcp", **tls}},
        {"tag": "TROJAN WS", "protocol": "trojan", "port": ports["TROJAN WS"], "listen": "127.0.0.1",
         "settings": {"clients": []},
         "streamSettings": {"network": "ws", "wsSettings": {"path": "/tj"}, **tls}},
        {"tag": "SS", "protocol": "shadowsocks", "port": ports["SS"], "listen": "127.0.0.1",
         # The panel's template: no method of the inbound's own; each user brings one.
         "settings": {"clients": [], "network": "tcp,udp"}},
        {"tag": "SS2022", "protocol": "shadowsocks", "port": ports["SS2022"], "listen": "127.0.0.1",
         "settings": {"method": "2022-blake3-aes-128-gcm", "password": SS2022_PSK, "clients": [],
                      "network": "tcp,udp"}},
        {"tag": "SOCKS", "protocol": "socks", "port": ports["SOCKS"], "listen": "127.0.0.1",
         "settings": {"auth": "password", "accounts": [], "udp": True}},
        {"tag": "HTTP", "protocol": "http", "port": ports["HTTP"], "listen": "127.0.0.1",
         "settings": {"accounts": []}},
        *extra,
    ]
    return json.dumps({"log": {}, "inbounds": inbounds, "outbounds": [{"protocol": "freedom"}]})


TAGS = ["VLESS TLS", "VLESS WS", "VMESS TCP", "VMESS WS TLS", "TROJAN", "TROJAN WS", "SS", "SS2022",
        "SOCKS", "HTTP"]


@pytest.fixture(scope="module")
def panel_node(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pg-inbounds")
    section = pasarguard_section(grpc=False)
    node = NodeProcess(tmp, {"pasarguard": section}).start()
    try:
        rest = int(section["listen"].rsplit(":", 1)[1])
        wait_tls_port(rest, node=node)
        try:
            driver = PanelDriver(tmp / "driver.log")
        except PanelClientUnavailable as exc:
            pytest.skip(str(exc))
        with driver:
            ca = (node.data_dir / "tls" / "node.crt").read_text()
            driver.call("connect", node="rest", mode="rest", port=rest, ca=ca, key=section["apiKey"])
            node.driver = driver
            node.ports = {tag: free_tcp_port() for tag in TAGS}
            node.xray = xray_config(node.ports, str(node.data_dir / "tls" / "node.crt"),
                                    str(node.data_dir / "tls" / "node.key"))
            driver.call("start", node="rest", config=node.xray,
                        users=[{**ALICE, "inbounds": ["HY", *TAGS]},
                               {**BOB, "inbounds": ["VMESS TCP"]}])
            yield node
    finally:
        node.stop()


def outbound(node, tag: str, user: dict) -> dict:
    port = node.ports[tag]
    tls = {"enabled": True, "insecure": True, "server_name": "localhost"}
    base = {"server": "127.0.0.1", "server_port": port}
    if tag.startswith("VLESS"):
        out = {"type": "vless", "uuid": user["vless"], **base}
    elif tag.startswith("VMESS"):
        out = {"type": "vmess", "uuid": user["vmess"], "security": "chacha20-poly1305", **base}
    elif tag.startswith("TROJAN"):
        out = {"type": "trojan", "password": user["trojan"], **base}
    elif tag == "SS2022":
        out = {"type": "shadowsocks", "method": "2022-blake3-aes-128-gcm",
               "password": f"{SS2022_PSK}:{user['ss']}", **base}
    elif tag == "SOCKS":
        out = {"type": "socks", "version": "5", "username": user["email"], "password": user["auth"],
               **base}
    elif tag == "HTTP":
        out = {"type": "http", "username": user["email"], "password": user["auth"], **base}
    else:
        out = {"type": "shadowsocks", "method": user["ss_method"], "password": user["ss"], **base}
    if tag in ("VLESS TLS", "VMESS WS TLS", "TROJAN", "TROJAN WS"):
        out["tls"] = tls
    if tag == "TROJAN WS":
        out["transport"] = {"type": "ws", "path": "/tj"}
    if tag == "VLESS WS":
        out["transport"] = {"type": "ws", "path": "/vl", "headers": {"Host": "cdn.example"}}
    if tag == "VMESS WS TLS":
        out["transport"] = {"type": "ws", "path": "/vm"}
    return out


def user_stat(node, email: str) -> tuple[int, int]:
    rows = node.driver.call("stats", node="rest", type="UserStat", name=email)
    values = {r[1]: r[3] for r in rows}
    return values.get("uplink", 0), values.get("downlink", 0)


@pytest.mark.parametrize("tag", TAGS)
def test_sing_box_as_a_panel_user_on_each_inbound(panel_node, targets, tmp_path, tag):
    before = user_stat(panel_node, ALICE["email"])
    with sing_box_client(tmp_path, outbound(panel_node, tag, ALICE)) as local:
        download_and_upload(local, targets, SIZE, 81)
    tx, rx = counted_both_ways(SIZE)
    want = (before[0] + tx, before[1] + rx)
    deadline = time.monotonic() + 5
    seen = user_stat(panel_node, ALICE["email"])
    while seen != want and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = user_stat(panel_node, ALICE["email"])
    assert seen == want


def test_an_inbound_outside_the_users_list_refuses_it(panel_node, targets, tmp_path):
    with sing_box_client(tmp_path, outbound(panel_node, "VLESS TLS", BOB)) as local:
        with pytest.raises((AssertionError, OSError)):
            download_and_upload(local, targets, 1 << 16, 3)
    assert "not allowed on inbound VLESS TLS" in panel_node.log() or \
        "unknown VLESS id" in panel_node.log()


def test_a_removed_user_is_cut_within_a_second(panel_node, targets, tmp_path):
    with sing_box_client(tmp_path, outbound(panel_node, "VMESS TCP", BOB)) as local:
        with socks5_connect(local, "127.0.0.1", targets.source) as s:
            s.sendall(struct.pack(">QQ", 1 << 40, 5))       # an endless download
            s.settimeout(10)
            got = 0
            while got < 1 << 20:
                data = s.recv(1 << 16)
                assert data
                got += len(data)
            # Online statistics see the VMess connection as they see Hysteria 2 ones.
            assert panel_node.driver.call("online", node="rest", email=BOB["email"])[1] >= 1
            ips = panel_node.driver.call("online_ip", node="rest", email=BOB["email"])["ips"]
            assert "127.0.0.1" in ips
            s.settimeout(0.05)
            panel_node.driver.call("sync_users", node="rest",
                                   users=[{**ALICE, "inbounds": ["HY", *TAGS]}])
            synced = time.monotonic()
            ended = None
            while time.monotonic() - synced < 5:
                try:
                    if not s.recv(1 << 20):
                        ended = time.monotonic()
                        break
                except TimeoutError:
                    continue
                except OSError:
                    ended = time.monotonic()
                    break
    assert ended is not None and ended - synced < 1.0, "bob's stream outlived his removal"


def test_reality_and_grpc_inbounds_refuse_the_start_by_name(panel_node, targets, tmp_path):
    for extra, words in (
            ({"tag": "VLESS REALITY", "protocol": "vless", "port": free_tcp_port(),
              "settings": {"decryption": "none"},
              "streamSettings": {"network": "tcp", "security": "reality",
                                 "realitySettings": {"dest": "example.com:443"}}},
             ["VLESS REALITY", "REALITY"]),
            ({"tag": "VLESS GRPC", "protocol": "vless", "port": free_tcp_port(),
              "settings": {"decryption": "none"}, "streamSettings": {"network": "grpc"}},
             ["VLESS GRPC", "gRPC"]),
            ({"tag": "WG", "protocol": "wireguard", "port": free_tcp_port()}, ["WG", "WireGuard"])):
        config = xray_config(panel_node.ports, "/nonexistent.crt", "/nonexistent.key", [extra])
        error = panel_node.driver.error("start", node="rest", config=config,
                                        users=[{**ALICE, "inbounds": ["HY", *TAGS]}])
        for word in words:
            assert word in str(error.detail), error.detail
    # The refused Starts changed nothing: the inbounds of the first still carry alice.
    with sing_box_client(tmp_path, outbound(panel_node, "VLESS WS", ALICE)) as local:
        download_and_upload(local, targets, 1 << 20, 9)


def test_a_vision_flow_is_refused_naming_the_inbound(panel_node):
    error = panel_node.driver.error("start", node="rest", config=panel_node.xray,
                                    users=[{**ALICE, "vless_flow": "xtls-rprx-vision",
                                            "inbounds": ["HY", *TAGS]}])
    assert "VLESS TLS" in str(error.detail) and "xtls-rprx-vision" in str(error.detail)


def test_inbound_statistics_split_by_tag(panel_node, targets, tmp_path):
    panel_node.driver.call("stats", node="rest", type="Inbounds", reset=True)
    size = 1 << 20
    with sing_box_client(tmp_path, outbound(panel_node, "VMESS WS TLS", ALICE)) as local:
        download_and_upload(local, targets, size, 13)
    tx, rx = counted_both_ways(size)
    deadline = time.monotonic() + 5
    while True:
        rows = panel_node.driver.call("stats", node="rest", type="Inbounds")
        got = {(r[0], r[1]): r[3] for r in rows}
        if got.get(("VMESS WS TLS", "uplink")) == tx or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert got[("VMESS WS TLS", "uplink")] == tx and got[("VMESS WS TLS", "downlink")] == rx
    for tag in [t for t in TAGS if t != "VMESS WS TLS"] + ["hysteria2"]:
        assert got[(tag, "uplink")] == 0 and got[(tag, "downlink")] == 0, (tag, got)
    one = panel_node.driver.call("stats", node="rest", type="Inbound", name="VMESS WS TLS")
    assert {r[1]: r[3] for r in one} == {"uplink": tx, "downlink": rx}


def test_a_start_whose_port_is_taken_is_undone(panel_node, targets, tmp_path):
    import socket
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    taken = holder.getsockname()[1]
    try:
        extra = {"tag": "VMESS EXTRA", "protocol": "vmess", "port": taken, "listen": "127.0.0.1",
                 "settings": {"clients": []}}
        # The Start would also drop SS: undone with it.
        config = json.loads(xray_config(panel_node.ports, str(panel_node.data_dir / "tls" / "node.crt"),
                                        str(panel_node.data_dir / "tls" / "node.key"), [extra]))
        config["inbounds"] = [i for i in config["inbounds"] if i["tag"] != "SS"]
        error = panel_node.driver.error("start", node="rest", config=json.dumps(config),
                                        users=[{**ALICE, "inbounds": ["HY", *TAGS]}])
        assert "VMESS EXTRA" in str(error.detail) and "could not open" in str(error.detail)
    finally:
        holder.close()
    socket.create_connection(("127.0.0.1", panel_node.ports["SS"]), 2).close()
    with sing_box_client(tmp_path, outbound(panel_node, "SS", ALICE)) as local:
        download_and_upload(local, targets, 1 << 20, 17)


def test_a_new_start_with_exclude_inbounds_closes_that_inbound_live(panel_node, targets, tmp_path):
    import socket
    panel_node.driver.call("start", node="rest", config=panel_node.xray, exclude=["SS"],
                           users=[{**ALICE, "inbounds": ["HY", *TAGS]}])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", panel_node.ports["SS"]), 2).close()
    # The others were kept open, and alice still passes.
    with sing_box_client(tmp_path, outbound(panel_node, "VMESS TCP", ALICE)) as local:
        download_and_upload(local, targets, 1 << 20, 11)
    panel_node.driver.call("start", node="rest", config=panel_node.xray,
                           users=[{**ALICE, "inbounds": ["HY", *TAGS]}])
    socket.create_connection(("127.0.0.1", panel_node.ports["SS"]), 2).close()


def test_a_synced_vision_user_is_refused_by_name(panel_node):
    carol = {"email": "3.carol", "vless": str(uuid.uuid4()), "vless_flow": "xtls-rprx-vision",
             "inbounds": ["VLESS TLS"]}
    dave = {"email": "4.dave", "vmess": str(uuid.uuid4()), "inbounds": ["VMESS TCP"]}
    alice = {**ALICE, "inbounds": ["HY", *TAGS]}
    # A chunked sync is applied whole or not at all: refused, naming the inbound and the flow.
    result = panel_node.driver.call("sync_users_chunked", node="rest", chunk_size=1,
                                    users=[alice, carol, dave])
    assert result["rejected"] and "3.carol" in result["failed"]
    assert "VLESS TLS" in result["detail"] and "xtls-rprx-vision" in result["detail"]
    assert panel_node.driver.error("stats", node="rest", type="UserStat", name="4.dave").code == 404
    # One user at a time (the client's path for older nodes): carol is set aside, dave lands.
    assert panel_node.driver.call("sync_user_each", node="rest", users=[alice, carol, dave]) == ["3.carol"]
    panel_node.driver.call("stats", node="rest", type="UserStat", name="4.dave")


def test_stop_closes_the_panels_inbounds(panel_node):
    import socket
    panel_node.driver.call("stop", node="rest")
    for tag in TAGS:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", panel_node.ports[tag]), 2).close()
