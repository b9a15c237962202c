"""Checks the supervisor makes before it starts any child, each failing with one line.

What a child would otherwise find only after it started (and a restart would find again): a
data dir it cannot use, a certificate that does not load, a port another process holds.  Each
check raises ``StartupError`` with the line the operator sees; the node exits non-zero.
"""
from __future__ import annotations

from pathlib import Path

from fastpath.supervisor.port_check import PortInUse, check_ports, node_ports


class StartupError(Exception):
    """The node cannot start; ``str()`` is one line."""


def check_data_dir(data_dir: Path) -> None:
    path = Path(data_dir)
    if path.exists() and not path.is_dir():
        raise StartupError(f"data dir {path}: not a directory")
    probe = path / ".write-test"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
        for name in ("secrets.json", "state.db"):
            if (path / name).exists():
                with open(path / name, "rb") as f:
                    f.read(1)
    except OSError as exc:
        where = exc.filename or path
        raise StartupError(f"data dir {path}: cannot use {where}: {exc.strerror or exc}") from None


def check_certificate(cert: str, key: str, key_names: tuple[str, str] = ("tls.cert", "tls.key")) -> None:
    """The Hysteria 2 certificate and key load and belong together."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    def read(path: str, name: str) -> bytes:
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise StartupError(f"{name}: cannot read {path}: {exc.strerror}") from None

    cert_pem, key_pem = read(cert, key_names[0]), read(key, key_names[1])
    try:
        certs = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise StartupError(f"{key_names[0]}: {cert} holds no PEM certificate") from None
    try:
        private = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        problem = "is encrypted (a key without a passphrase is needed)" if "encrypted" in str(exc) \
            or isinstance(exc, TypeError) else "holds no PEM private key"
        raise StartupError(f"{key_names[1]}: {key} {problem}") from None
    ours = private.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    theirs = certs[0].public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    if ours != theirs:
        raise StartupError(f"{key_names[1]}: {key} is not the key of the certificate {cert}")


def check_node(config) -> None:
    """Every check, in the order an operator would fix them."""
    check_data_dir(config.data_dir)
    hy2 = config.sections.get("hysteria")
    if hy2 is not None and hy2.cert and hy2.key:
        check_certificate(hy2.cert, hy2.key)
    # Certificates of the TLS store by id (fastpath.tls_ids): there, with a matching key.
    listeners = [("tls.certId", hy2)] if hy2 is not None else []
    listeners += [(f"inbounds[{i}].tls.certId", s) for i, s in enumerate(config.sections.get("inbounds") or [])]
    for name, settings in listeners:
        if getattr(settings, "cert_id", None):
            try:
                cert, key = settings.tls_files(config.data_dir)
            except LookupError as exc:
                raise StartupError(f"{name}: {exc}") from None
            check_certificate(cert, key, (name, name))
    try:
        check_ports(node_ports(config))
    except PortInUse as exc:
        raise StartupError(str(exc)) from None
    except OSError as exc:
        raise StartupError(exc.strerror or str(exc)) from None
