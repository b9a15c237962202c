"""The ``pasarguard`` section: off when absent, refused without a valid UUID key, one-line errors."""
import uuid

import pytest

from fastpath.control.pasarguard.config import parse_pasarguard_config
from fastpath.control.pasarguard.tls import certificate_names, required_names, resolve_certificate
from fastpath.config import ConfigError, parse_config

KEY = "3b241101-e2bb-4255-8caf-4136c566a962"


def test_absent_section_means_face_off(tmp_path):
    assert parse_pasarguard_config(None) is None
    assert parse_config({}, data_dir=tmp_path).sections["pasarguard"] is None


def test_defaults():
    s = parse_pasarguard_config({"apiKey": KEY})
    assert s.listen == ("127.0.0.1", 62050)
    assert s.grpc_listen is None
    assert s.api_key == uuid.UUID(KEY)
    assert s.inbound_tag == "hysteria2"
    assert (s.tls_cert, s.tls_key, s.tls_names) == (None, None, [])


def test_key_compares_as_uuid():
    assert parse_pasarguard_config({"apiKey": KEY.upper().replace("-", "")}).api_key == uuid.UUID(KEY)


@pytest.mark.parametrize("raw, message", [
    ({}, "pasarguard.apiKey: is required"),
    ({"apiKey": "secret"}, "pasarguard.apiKey: not a UUID: 'secret'"),
    ({"apiKey": str(uuid.UUID(int=0))}, "pasarguard.apiKey: the nil UUID is not a usable key"),
    ({"apiKey": KEY, "listen": "here"}, "pasarguard.listen: expected host:port"),
    ({"apiKey": KEY, "grpcListen": "127.0.0.1:62050"}, "pasarguard.grpcListen: REST and gRPC need a port each"),
    ({"apiKey": KEY, "apikey": KEY}, "pasarguard.apikey: unknown key"),
    ({"apiKey": KEY, "tls": {"cert": "/x.crt"}}, "pasarguard.tls: give both cert and key, or neither"),
    ({"apiKey": KEY, "tls": {"cert": "/x", "key": "/y", "names": ["a"]}}, "pasarguard.tls.names: only applies"),
    ({"apiKey": KEY, "tls": {"crt": "/x"}}, "pasarguard.tls.crt: unknown key"),
    ({"apiKey": KEY, "inboundTag": ""}, "pasarguard.inboundTag: must not be empty"),
])
def test_broken_section_is_refused_naming_the_key(raw, message):
    with pytest.raises(ConfigError) as err:
        parse_pasarguard_config(raw)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_section_in_node_config(tmp_path):
    cfg = parse_config({"pasarguard": {"apiKey": KEY, "grpcListen": "127.0.0.1:62051"}}, data_dir=tmp_path)
    assert cfg.sections["pasarguard"].grpc_listen == ("127.0.0.1", 62051)
    with pytest.raises(ConfigError, match="pasarguard.apiKey"):
        parse_config({"pasarguard": {}}, data_dir=tmp_path)


def test_default_certificate_covers_loopback(tmp_path):
    s = parse_pasarguard_config({"apiKey": KEY})
    cert, key = resolve_certificate(s, tmp_path)
    assert cert == tmp_path / "tls" / "node.crt" and key.exists()
    assert {"localhost", "127.0.0.1", "::1"} <= certificate_names(cert)


def test_other_address_gets_its_own_certificate_once(tmp_path):
    s = parse_pasarguard_config({"apiKey": KEY, "listen": "192.0.2.7:62050",
                                 "tls": {"names": ["Node1.Example.com"]}})
    assert required_names(s) == {"192.0.2.7", "node1.example.com"}
    cert, _key = resolve_certificate(s, tmp_path)
    assert cert.name == "pasarguard.crt"
    assert {"192.0.2.7", "node1.example.com", "127.0.0.1"} <= certificate_names(cert)
    pem = cert.read_bytes()
    assert resolve_certificate(s, tmp_path)[0].read_bytes() == pem      # reused, pin unchanged
    s2 = parse_pasarguard_config({"apiKey": KEY, "listen": "192.0.2.8:62050"})
    cert2, _ = resolve_certificate(s2, tmp_path)
    assert "192.0.2.8" in certificate_names(cert2) and cert2.read_bytes() != pem


def test_wildcard_bind_certificate_names_this_host(tmp_path):
    s = parse_pasarguard_config({"apiKey": KEY, "listen": "0.0.0.0:62050", "tls": {"names": ["panel.test"]}})
    cert, _ = resolve_certificate(s, tmp_path)
    names = certificate_names(cert)
    assert "panel.test" in names and "127.0.0.1" in names


def test_configured_certificate_is_used_as_is(tmp_path):
    s = parse_pasarguard_config({"apiKey": KEY, "tls": {"cert": str(tmp_path / "a.crt"),
                                                        "key": str(tmp_path / "a.key")}})
    with pytest.raises(OSError, match="pasarguard.tls.cert: .*a.crt is not a readable file"):
        resolve_certificate(s, tmp_path)
    (tmp_path / "a.crt").write_text("x")
    (tmp_path / "a.key").write_text("x")
    assert resolve_certificate(s, tmp_path) == (tmp_path / "a.crt", tmp_path / "a.key")
