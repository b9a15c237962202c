"""First-start setup of a data dir: generated secrets and a self-signed TLS certificate.

Secrets are generated once, written with mode 0600, and printed once (on the start that made
them); later starts reuse them silently.
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def write_private(path: Path, data: bytes) -> None:
    """Write atomically (temp file + rename) with mode 0600."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# Secrets no operator types or reads: added to an older secrets.json on the next start.
INTERNAL_SECRETS = {
    # The key stateless-reset tokens derive from (fastpath.hy2.quic.stateless_reset): shared by every
    # worker and kept across restarts, so a restarted worker can reset the connections it lost.
    "stateless_reset_key": lambda: secrets.token_hex(32),
}


def load_or_create_secrets(data_dir: Path) -> tuple[dict, bool]:
    """(secrets, created_now)."""
    path = data_dir / "secrets.json"
    if path.exists():
        values = json.loads(path.read_text())
        missing = {k: make() for k, make in INTERNAL_SECRETS.items() if k not in values}
        if missing:
            values.update(missing)
            write_private(path, json.dumps(values, indent=2).encode())
        return values, False
    values = {
        "control_token": secrets.token_urlsafe(32),
        "default_user_secret": secrets.token_urlsafe(18),
        **{k: make() for k, make in INTERNAL_SECRETS.items()},
    }
    write_private(path, json.dumps(values, indent=2).encode())
    return values, True


def stateless_reset_key(data_dir: Path) -> bytes | None:
    """The node's stateless-reset key from secrets.json (None when there is none yet: a
    worker started without the supervisor)."""
    try:
        value = json.loads((data_dir / "secrets.json").read_text()).get("stateless_reset_key")
    except (OSError, ValueError):
        return None
    return bytes.fromhex(value) if isinstance(value, str) and value else None


def ensure_certificate(data_dir: Path, hostnames: list[str] | None = None) -> tuple[Path, Path]:
    """A self-signed certificate for the node, made once, with SANs for loopback and the
    given names/addresses."""
    tls_dir = data_dir / "tls"
    cert_path, key_path = tls_dir / "node.crt", tls_dir / "node.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    tls_dir.mkdir(parents=True, exist_ok=True)
    cert_pem, key_pem = make_self_signed(["localhost", "127.0.0.1", "::1", *(hostnames or [])])
    write_private(key_path, key_pem)
    write_private(cert_path, cert_pem)
    return cert_path, key_path


def make_self_signed(names: list[str], days: int = 3650, common_name: str = "fastpath node") -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in dict.fromkeys(n for n in names if n):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
