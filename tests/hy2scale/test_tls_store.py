"""The TLS store behind the HY2 SCALE UI's TLS page, on a real node: generate (self-signed and
CA), sign with a stored CA, import PEM and from an allowed path, PEM download, delete; a real
TLS handshake with a stored certificate; keys never in any answer; random bodies refused with
a 4xx and nothing stored."""
from __future__ import annotations

import json
import os
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hy2scale.conftest import SCALE, ScaleClient
from tests.support.node import NodeProcess

pytestmark = pytest.mark.integration

LIST_KEYS = {"id", "name", "subject", "issuer", "not_after", "is_ca", "cert_file"}


@pytest.fixture(scope="module")
def tnode(tmp_path_factory):
    with NodeProcess(tmp_path_factory.mktemp("tls"), {"scale": dict(SCALE)}) as n:
        n.scale = ScaleClient(n)
        yield n


def no_key(r):
    assert b"PRIVATE KEY" not in r.body, r.text
    return r


def listing(n):
    return {c["id"]: c for c in no_key(n.scale.get("/tls")).json()}


def test_generate_sign_download_and_a_real_handshake(tnode):
    s = tnode.scale
    r = no_key(s("POST", "/tls/generate", {"id": "ca1", "name": "My CA", "domains": ["ca.example"],
                                           "days": 3650, "is_ca": True}))
    assert r.status == 200, r.text
    r = no_key(s("POST", "/tls/sign", {"ca_id": "ca1", "id": "srv", "cn": "localhost", "days": 30}))
    assert r.status == 200, r.text
    r = no_key(s("POST", "/tls/generate", {"id": "self", "domains": ["a.example", "b.example"]}))
    assert r.status == 200, r.text
    certs = listing(tnode)
    assert LIST_KEYS <= set(certs["ca1"]) and certs["ca1"]["is_ca"] is True and certs["ca1"]["name"] == "My CA"
    assert certs["ca1"]["key_file"]                     # the UI offers it for signing
    assert certs["srv"]["issuer"] == "ca.example" and certs["srv"]["subject"] == "localhost"
    assert certs["srv"]["ca_parent_id"] == "ca1" and certs["srv"]["is_ca"] is False
    assert certs["self"]["subject"] == certs["self"]["issuer"] == "a.example"
    assert len(certs["self"]["not_after"]) == 10
    assert os.stat(certs["srv"]["key_file"]).st_mode & 0o077 == 0        # the key is 0600
    pem = no_key(s.get("/tls/srv/pem")).json()
    assert pem["key"] == "" and pem["has_key"] is True
    leaf = x509.load_pem_x509_certificate(pem["cert"].encode())
    ca = x509.load_pem_x509_certificate(s.get("/tls/ca1/pem").json()["cert"].encode())
    leaf.verify_directly_issued_by(ca)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    san_self = x509.load_pem_x509_certificate(s.get("/tls/self/pem").json()["cert"].encode())
    assert san_self.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
        .get_values_for_type(x509.DNSName) == ["a.example", "b.example"]

    # A TLS server with the stored files; a client that trusts only the stored CA.
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certs["srv"]["cert_file"], certs["srv"]["key_file"])
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(tls.recv(100))
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    client_ctx = ssl.create_default_context(cadata=s.get("/tls/ca1/pem").json()["cert"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            client_ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"hello")
        assert tls.recv(100) == b"hello"
    t.join(5)
    listener.close()

    # Signing needs a stored CA with its key.
    for body, words in (({"ca_id": "self", "id": "x", "cn": "h.example"}, "not a CA"),
                        ({"ca_id": "nope", "id": "x", "cn": "h.example"}, "not found"),
                        ({"ca_id": "ca1", "id": "x"}, "cn")):
        r = s("POST", "/tls/sign", body)
        assert r.status == 400 and words in r.json()["message"], (body, r.text)
    for cid in ("ca1", "srv", "self"):
        assert s("DELETE", f"/tls/{cid}").status == 200
    assert s("DELETE", "/tls/srv").status == 404 and s.get("/tls/srv/pem").status == 404
    assert listing(tnode) == {}


def _pair(cn="imp.example"):
    key = ec.generate_private_key(ec.SECP256R1())
    import datetime

    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=2)).sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()).decode())


def test_import_pem_and_path(tnode, tmp_path):
    s = tnode.scale
    cert, key = _pair()
    _other_cert, other_key = _pair("other.example")
    assert s("POST", "/tls/import", {"id": "imp", "name": "Imported", "cert": cert, "key": other_key}).status == 400
    assert s("POST", "/tls/import", {"id": "imp", "cert": "not a pem"}).status == 400
    assert s("POST", "/tls/import", {"id": "../imp", "cert": cert}).status == 400
    assert "imp" not in listing(tnode)                        # nothing half-stored
    r = no_key(s("POST", "/tls/import", {"id": "imp", "name": "Imported", "cert": cert, "key": key}))
    assert r.status == 200, r.text
    assert listing(tnode)["imp"]["key_file"] and listing(tnode)["imp"]["subject"] == "imp.example"
    r = s("POST", "/tls/import", {"id": "imp", "cert": cert})     # re-import without key: no key kept
    assert r.status == 200 and "key_file" not in listing(tnode)["imp"]

    allowed = tnode.data_dir / "tls-import"
    allowed.mkdir(exist_ok=True)
    (allowed / "c.pem").write_text(cert)
    (allowed / "k.pem").write_text(key)
    outside = tmp_path / "k.pem"
    outside.write_text(key)
    (allowed / "link.pem").symlink_to(outside)
    r = s("POST", "/tls/import-path", {"id": "byp", "cert_path": str(allowed / "c.pem"),
                                       "key_path": str(allowed / "k.pem")})
    assert r.status == 200, r.text
    assert listing(tnode)["byp"]["key_file"]
    for bad in (str(outside), str(allowed / "link.pem"), str(allowed / ".." / "data.db"), "/etc/passwd"):
        r = s("POST", "/tls/import-path", {"id": "bad", "cert_path": str(allowed / "c.pem"), "key_path": bad})
        assert r.status == 400 and "must be a file under" in r.json()["message"], (bad, r.text)
    assert s("POST", "/tls/import-path", {"id": "bad", "cert_path": str(allowed / "nope.pem")}).status == 400
    assert "bad" not in listing(tnode)
    for cid in ("imp", "byp"):
        assert s("DELETE", f"/tls/{cid}").status == 200


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                    max_leaves=12)
KEYS = st.sampled_from(["id", "name", "cert", "key", "cert_path", "key_path", "domains", "days", "is_ca",
                        "ca_id", "cn", "x"])
BODIES = st.one_of(JSON, st.dictionaries(KEYS, JSON, max_size=7))
ROUTES = ["/tls/import", "/tls/import-path", "/tls/generate", "/tls/sign"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES, route=st.sampled_from(ROUTES))
def test_random_bodies_on_the_tls_routes(tnode, body, route):
    try:
        raw = json.dumps(body, allow_nan=True)
    except (ValueError, OverflowError):
        return
    before = listing(tnode)
    r = tnode.request("POST", "/scale/api" + route, raw.encode(),
                      headers={"Authorization": f"Bearer {tnode.scale.token}", "Content-Type": "application/json"})
    assert r.status < 500, (route, raw, r.text)
    no_key(r)
    if r.status >= 400:
        assert r.json()["message"]
        assert listing(tnode) == before, (route, raw)
    for cid in set(listing(tnode)) - set(before):
        assert tnode.scale("DELETE", f"/tls/{cid}").status == 200
