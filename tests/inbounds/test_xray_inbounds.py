"""The panel's xray inbounds as node inbounds: what converts, what is refused by name, and
hostile configs under hypothesis (only a refusal naming the problem, never another error)."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from fastpath.config.fields import ConfigError
from fastpath.inbounds.config import parse_inbounds_config
from fastpath.inbounds.xray_inbounds import Unserved, from_xray


def convert(*inbounds, exclude=()):
    converted = from_xray(json.dumps({"inbounds": list(inbounds)}), exclude)
    return converted, parse_inbounds_config(converted.entries)


def test_each_served_kind_converts():
    converted, settings = convert(
        {"tag": "HY", "protocol": "hysteria", "port": 443},
        {"tag": "a", "protocol": "vless", "port": 1001, "settings": {"decryption": "none"},
         "streamSettings": {"network": "ws", "security": "tls",
                            "wsSettings": {"path": "/p", "headers": {"Host": "h.example"}}}},
        {"tag": "b", "protocol": "vmess", "port": 1002, "streamSettings": {"network": "raw"}},
        {"tag": "c", "protocol": "trojan", "port": 1003, "settings": {"fallbacks": [{"dest": 80}]},
         "streamSettings": {"security": "tls", "tlsSettings": {"certificates": [
             {"certificate": ["-----BEGIN CERTIFICATE-----", "x"], "key": ["k"]}]}}},
        {"tag": "d", "protocol": "shadowsocks", "port": 1004, "settings": {"method": "aes-256-gcm"}},
        {"tag": "e", "protocol": "socks", "port": 1005, "listen": "127.0.0.1",
         "settings": {"auth": "noauth"}},
        {"tag": "f", "protocol": "shadowsocks", "port": 1007,
         "settings": {"clients": [], "network": "tcp,udp"}},
        {"tag": "gone", "protocol": "wireguard", "port": 1006}, exclude=["gone"])
    assert converted.hysteria_tags == {"HY"}
    by_tag = {s.tag: s for s in settings}
    assert set(by_tag) == {"a", "b", "c", "d", "e", "f"}
    assert by_tag["f"].method == "per-user"        # the panel's template: users bring theirs
    a = by_tag["a"]
    assert (a.type, a.tls, a.transport, a.ws_path, a.ws_host) == ("vless", True, "ws", "/p", "h.example")
    assert by_tag["b"].transport == "tcp" and not by_tag["b"].tls
    assert by_tag["c"].fallback == ("127.0.0.1", 80) and "c" in converted.certificates
    assert by_tag["d"].method == "aes-256-gcm"
    assert by_tag["e"].auth is False



def test_a_shadowsocks_2022_inbound_keeps_its_password_as_the_server_key():
    psk = "MTIzNDU2Nzg5MDEyMzQ1Ng=="                     # 16 bytes
    _, settings = convert({"tag": "ss22", "protocol": "shadowsocks", "port": 1008,
                           "settings": {"method": "2022-blake3-aes-128-gcm", "password": psk,
                                        "clients": []}})
    assert (settings[0].method, settings[0].psk) == ("2022-blake3-aes-128-gcm", psk)
    with pytest.raises(ConfigError, match="psk"):          # a key of the wrong size, refused
        convert({"tag": "ss22", "protocol": "shadowsocks", "port": 1008,
                 "settings": {"method": "2022-blake3-aes-256-gcm", "password": psk}})

@pytest.mark.parametrize("inbound, words", [
    ({"protocol": "vless", "streamSettings": {"security": "reality"}}, ["REALITY"]),
    ({"protocol": "vmess", "streamSettings": {"network": "grpc"}}, ["gRPC"]),
    ({"protocol": "vless", "streamSettings": {"network": "xhttp"}}, ["XHTTP"]),
    ({"protocol": "vless", "streamSettings": {"network": "httpupgrade"}}, ["HTTPUpgrade"]),
    ({"protocol": "wireguard"}, ["WireGuard"]),
    ({"protocol": "dokodemo-door"}, ["dokodemo-door"]),
    ({"protocol": "tuic"}, ["'tuic'"]),
    ({"protocol": "vmess", "streamSettings": {"tcpSettings": {"header": {"type": "http"}}}},
     ["header obfuscation"]),
    ({"protocol": "trojan"}, ["Trojan without TLS"]),
    ({"protocol": "vless", "port": "1000-2000"}, ["port"]),
])
def test_what_is_not_served_names_the_inbound(inbound, words):
    with pytest.raises(Unserved) as caught:
        from_xray(json.dumps({"inbounds": [{"tag": "IN-X", "port": 1000, **inbound}]}))
    for word in ["'IN-X'", *words]:
        assert word in str(caught.value)


def test_a_vision_flow_in_the_config_is_refused_by_the_check():
    converted = from_xray(json.dumps({"inbounds": [
        {"tag": "V", "protocol": "vless", "port": 1000,
         "settings": {"clients": [{"id": "x", "flow": "xtls-rprx-vision"}]},
         "streamSettings": {"security": "tls"}}]}))
    with pytest.raises(ConfigError, match="'V'.*xtls-rprx-vision"):
        parse_inbounds_config(converted.entries)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.text(max_size=12)
    | st.sampled_from(["tls", "ws", "reality", "vless", "vmess", "trojan", "tcp", "grpc", "none",
                       "shadowsocks", "socks", "http", "aes-128-gcm", "/p"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["tag", "protocol", "port", "listen", "settings", "streamSettings",
                         "network", "security", "wsSettings", "path", "host", "headers",
                         "tlsSettings", "certificates", "certificateFile", "keyFile", "method",
                         "clients", "flow", "fallbacks", "dest", "decryption", "auth",
                         "tcpSettings", "header", "type", "certificate", "key"]),
        children, max_size=6),
    max_leaves=30)


def shaped(**fields):
    """An object with some of ``fields`` (each a strategy), or any JSON value instead."""
    return st.one_of(st.fixed_dictionaries({}, optional=fields), json_values)


stream_settings = shaped(
    network=st.sampled_from(["tcp", "raw", "ws", "ws", "ws", "grpc", ""]),
    security=st.sampled_from(["tls", "none", "reality"]) | json_values,
    wsSettings=shaped(path=json_values, host=json_values, headers=shaped(Host=json_values)),
    tcpSettings=shaped(header=shaped(type=json_values)),
    tlsSettings=shaped(certificates=st.lists(shaped(certificateFile=json_values, keyFile=json_values,
                                                    certificate=json_values, key=json_values),
                                             max_size=2) | json_values))
inbound_shape = st.fixed_dictionaries({
    # A usable tag, port and protocol most of the time, so the hostile parts further in are
    # reached (a bad tag or port is refused first).
    "tag": st.text(min_size=1, max_size=8),
    "port": st.integers(1, 65535),
    "protocol": st.sampled_from(["vless", "vmess", "trojan", "shadowsocks", "socks", "http"]),
}, optional=dict(
    listen=st.sampled_from(["127.0.0.1", "::1"]) | json_values,
    settings=shaped(clients=st.lists(shaped(flow=json_values, method=json_values), max_size=2)
                    | json_values, method=json_values, decryption=json_values, auth=json_values,
                    flow=json_values, fallbacks=st.lists(shaped(dest=json_values), max_size=2)
                    | json_values),
    streamSettings=stream_settings)) | shaped(tag=json_values, port=json_values,
                                              protocol=json_values, listen=json_values)


@settings(max_examples=1000, deadline=None)
@given(st.lists(inbound_shape, min_size=1, max_size=4))
def test_hostile_configs_only_meet_a_refusal(inbounds):
    for config in (inbounds, inbounds[0]):     # a list of inbounds, or something else
        _refused_or_converted({"inbounds": config})


def _refused_or_converted(config):
    try:
        converted = from_xray(json.dumps(config))
        parse_inbounds_config(converted.entries)
    except (Unserved, ConfigError):
        pass
