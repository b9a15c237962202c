"""The TLS store: the certificates (and their keys) the HY2 SCALE UI's TLS page manages.

Files in the node's data dir, ``tls-store/<id>.crt`` (PEM), ``tls-store/<id>.key`` (PEM, mode
0600, only when the certificate has one) and ``tls-store/<id>.json`` (``{name, ca_parent_id}``)
(not ``tls/``, which holds the listener's own generated certificate), written to a
temporary name and renamed, so every API process sees a whole entry or none.  The X.509 work
is the ``cryptography`` package's.

Routes (the reference's shapes): ``GET /tls`` lists ``{id, name, subject, issuer, not_after
(YYYY-MM-DD), is_ca, cert_file, key_file (when a key is stored), ca_parent_id}``;
``POST /tls/import {id, name, cert, key?}`` (a key must match the certificate);
``POST /tls/import-path {id, name, cert_path, key_path?}`` reads files from the allowed
directories only (``ALLOWED_DIRS``, after resolving links); ``POST /tls/generate {id, name,
domains[], days?, is_ca?}`` makes a self-signed certificate (a CA when ``is_ca``);
``POST /tls/sign {ca_id, id, name, cn, days?}`` issues a server certificate from a stored CA;
``GET /tls/{id}/pem`` gives the certificate PEM; ``DELETE /tls/{id}``.

Keys never leave the node: the reference's PEM answer carries the private key, this one has
``key: ""`` and ``has_key``; ``key_file`` is the path of the key on the node, which the UI
reads as "has a key" and to offer a CA for signing.
"""
from __future__ import annotations

import datetime
import json
import os
import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fastpath.control import validation as v
from fastpath.control.errors import bad_request, not_found
from fastpath.tls_ids import STORE_DIR

CERT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DOMAIN = re.compile(r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*$")
MAX_PEM = 64 * 1024
MAX_DOMAINS = 100
MAX_DAYS = 36500
IMPORT_DIRS = ("/etc/letsencrypt", "/etc/ssl")     # plus the data dir's tls-import/


def _text(body: dict, name: str, max_len: int, required: bool = False) -> str:
    value = body.get(name)
    if value in (None, ""):
        if required:
            raise bad_request(f"{name} required")
        return ""
    if not isinstance(value, str) or len(value) > max_len:
        raise bad_request(f"{name} must be text of at most {max_len} characters")
    return value


def _cert_id(body: dict, name: str = "id") -> str:
    value = _text(body, name, 64, required=True)
    if not CERT_ID.match(value):
        raise bad_request(f"{name} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return value


def _days(body: dict, default: int) -> int:
    if body.get("days") in (None, 0):
        return default
    return v.integer(body, "days", minimum=1, maximum=MAX_DAYS)


def _common_name(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else name.rfc4514_string()


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def parse_cert(pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except (ValueError, TypeError):
        raise bad_request("cert is not a PEM certificate") from None


def parse_key(pem: str, cert: x509.Certificate):
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise bad_request("key is not an unencrypted PEM private key") from None
    raw = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if key.public_key().public_bytes(enc, raw) != cert.public_key().public_bytes(enc, raw):
        raise bad_request("key does not match the certificate")
    return key


class TlsStore:
    def __init__(self, data_dir: Path):
        self.dir = Path(data_dir) / STORE_DIR       # where the listeners look ids up
        self.import_dirs = [Path(data_dir) / "tls-import", *map(Path, IMPORT_DIRS)]

    def _path(self, cert_id: str, ext: str) -> Path:
        return self.dir / f"{cert_id}.{ext}"

    def _write(self, path: Path, data: bytes, mode: int) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def save(self, cert_id: str, name: str, cert_pem: str, key_pem: str, ca_parent: str = "") -> None:
        """Store an entry that is already checked: key, meta, then the certificate (whose
        presence makes the entry exist)."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        key_path = self._path(cert_id, "key")
        if key_pem:
            self._write(key_path, key_pem.encode(), 0o600)
        elif key_path.exists():
            key_path.unlink()
        self._write(self._path(cert_id, "json"),
                    json.dumps({"name": name or cert_id, "ca_parent_id": ca_parent}).encode(), 0o600)
        self._write(self._path(cert_id, "crt"), cert_pem.encode(), 0o644)

    def info(self, cert_id: str) -> dict | None:
        try:
            cert = x509.load_pem_x509_certificate(self._path(cert_id, "crt").read_bytes())
        except (OSError, ValueError):
            return None
        try:
            meta = json.loads(self._path(cert_id, "json").read_text())
        except (OSError, ValueError):
            meta = {}
        key_path = self._path(cert_id, "key")
        out = {"id": cert_id, "name": meta.get("name") or cert_id, "subject": _common_name(cert.subject),
               "issuer": _common_name(cert.issuer),
               "not_after": cert.not_valid_after_utc.strftime("%Y-%m-%d"), "is_ca": _is_ca(cert),
               "cert_file": str(self._path(cert_id, "crt"))}
        if key_path.exists():
            out["key_file"] = str(key_path)
        if meta.get("ca_parent_id"):
            out["ca_parent_id"] = meta["ca_parent_id"]
        return out

    def list(self) -> list[dict]:
        if not self.dir.is_dir():
            return []
        out = [self.info(p.stem) for p in sorted(self.dir.glob("*.crt"))]
        return [i for i in out if i is not None]

    def get(self, cert_id: str) -> dict:
        info = self.info(cert_id) if CERT_ID.match(cert_id) else None
        if info is None:
            raise not_found(f"certificate {cert_id!r} not found")
        return info

    def delete(self, cert_id: str) -> None:
        self.get(cert_id)
        for ext in ("crt", "key", "json"):
            try:
                self._path(cert_id, ext).unlink()
            except FileNotFoundError:
                pass

    def import_pem(self, body: dict) -> dict:
        cert_id = _cert_id(body)
        name = _text(body, "name", 128) or cert_id
        cert_pem = _text(body, "cert", MAX_PEM, required=True)
        key_pem = _text(body, "key", MAX_PEM)
        cert = parse_cert(cert_pem)
        if key_pem:
            parse_key(key_pem, cert)
        self.save(cert_id, name, cert_pem, key_pem)
        return self.get(cert_id)

    def _allowed(self, raw: str, what: str) -> str:
        path = os.path.realpath(raw)
        for d in self.import_dirs:
            root = os.path.realpath(d)
            if path.startswith(root.rstrip("/") + "/"):
                try:
                    with open(path, encoding="utf-8") as f:
                        return f.read(MAX_PEM + 1)[:MAX_PEM + 1]
                except (OSError, UnicodeDecodeError) as exc:
                    raise bad_request(f"cannot read {what}: {exc.__class__.__name__}") from None
        allowed = ", ".join(str(d) for d in self.import_dirs)
        raise bad_request(f"{what} must be a file under one of: {allowed}")

    def import_path(self, body: dict) -> dict:
        cert_id = _cert_id(body)
        name = _text(body, "name", 128) or cert_id
        cert_pem = self._allowed(_text(body, "cert_path", 4096, required=True), "cert_path")
        key_raw = _text(body, "key_path", 4096)
        key_pem = self._allowed(key_raw, "key_path") if key_raw else ""
        if len(cert_pem) > MAX_PEM or len(key_pem) > MAX_PEM:
            raise bad_request(f"a PEM file is larger than {MAX_PEM} bytes")
        return self.import_pem({"id": cert_id, "name": name, "cert": cert_pem, "key": key_pem})

    def generate(self, body: dict) -> dict:
        cert_id = _cert_id(body)
        name = _text(body, "name", 128) or cert_id
        domains = body.get("domains")
        if not isinstance(domains, list) or not domains or len(domains) > MAX_DOMAINS or not all(
                isinstance(d, str) and DOMAIN.match(d) and len(d) <= 253 for d in domains):
            raise bad_request(f"domains must be a list of 1-{MAX_DOMAINS} DNS names")
        is_ca = body.get("is_ca") is not None and v.boolean(body, "is_ca")
        days = _days(body, 365)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domains[0])])
        builder = self._builder(subject, subject, key.public_key(), days)
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]),
                                        critical=False)
        builder = self._usage(builder, is_ca)
        cert = builder.sign(key, hashes.SHA256())
        self.save(cert_id, name, _pem(cert), _key_pem(key))
        return self.get(cert_id)

    def sign(self, body: dict) -> dict:
        ca_id = _cert_id(body, "ca_id")
        cert_id = _cert_id(body)
        cn = _text(body, "cn", 253, required=True)
        if not DOMAIN.match(cn):
            raise bad_request("cn must be a DNS name")
        name = _text(body, "name", 128) or cn
        days = _days(body, 7300)
        ca_info = self.info(ca_id)
        if ca_info is None:
            raise bad_request(f"CA {ca_id!r} not found")
        if not ca_info["is_ca"]:
            raise bad_request(f"{ca_id!r} is not a CA")
        if "key_file" not in ca_info:
            raise bad_request(f"CA {ca_id!r} has no private key on this node")
        if ca_id == cert_id:
            raise bad_request("id must differ from ca_id")
        ca_cert = x509.load_pem_x509_certificate(self._path(ca_id, "crt").read_bytes())
        ca_key = serialization.load_pem_private_key(self._path(ca_id, "key").read_bytes(), password=None)
        # P-256 like the self-signed ones (the reference picks RSA for IKEv2 clients, which
        # this node does not serve).
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        builder = self._builder(subject, ca_cert.subject, key.public_key(), days)
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
        builder = self._usage(builder, False)
        cert = builder.sign(ca_key, hashes.SHA256())
        self.save(cert_id, name, _pem(cert), _key_pem(key), ca_parent=ca_id)
        return self.get(cert_id)

    @staticmethod
    def _builder(subject, issuer, public_key, days: int) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.timezone.utc)
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=days)))

    @staticmethod
    def _usage(builder, is_ca: bool):
        builder = builder.add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        if is_ca:
            return builder.add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False), critical=True)
        return builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


class TlsList:
    def __init__(self, store: TlsStore):
        self.store = store

    def on_get(self, req, resp):
        resp.media = self.store.list()


class TlsAction:
    """``POST /tls/{import,import-path,generate,sign}``: the stored entry's listing."""

    def __init__(self, store: TlsStore, action: str):
        self.run = getattr(store, action)

    def on_post(self, req, resp):
        resp.media = dict(self.run(v.json_object(req)), status="ok")


class TlsItem:
    def __init__(self, store: TlsStore):
        self.store = store

    def on_delete(self, req, resp, cert_id):
        self.store.delete(cert_id)
        resp.media = {"status": "ok", "id": cert_id}


class TlsPem:
    def __init__(self, store: TlsStore):
        self.store = store

    def on_get(self, req, resp, cert_id):
        info = self.store.get(cert_id)
        resp.media = {"cert": Path(info["cert_file"]).read_text(), "key": "", "has_key": "key_file" in info}
