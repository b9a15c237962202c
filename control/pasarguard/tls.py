"""The certificate the panel pins: the configured one, or one generated for the listen address.

The panel loads the node's certificate as its only trust anchor and checks the host name it
dials against the SANs.  The supervisor's ``<dataDir>/tls/node.crt`` names loopback only; when
the face listens elsewhere it uses ``<dataDir>/tls/pasarguard.crt`` instead, generated once with
the SANs it needs (the listen address, ``tls.names``, and for a wildcard bind every address of
this host), and generated again only when a configured name is missing from it.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
from pathlib import Path

from cryptography import x509

from fastpath.control.pasarguard.config import WILDCARD_HOSTS, PasarGuardSettings
from fastpath.supervisor.bootstrap import ensure_certificate, make_self_signed, write_private

log = logging.getLogger("fastpath.pasarguard")

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def certificate_names(path: Path) -> set[str]:
    """The DNS names and IP addresses (normalized) a PEM certificate's SAN extension lists."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    names = {n.lower() for n in sans.get_values_for_type(x509.DNSName)}
    names |= {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    return names


def _normal(name: str) -> str:
    try:
        return str(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        return name.lower()


def required_names(settings: PasarGuardSettings) -> set[str]:
    """Names the certificate must carry: the specific listen hosts and ``tls.names``."""
    hosts = [settings.listen[0]]
    if settings.grpc_listen:
        hosts.append(settings.grpc_listen[0])
    names = {_normal(h) for h in hosts if h not in WILDCARD_HOSTS}
    names |= {_normal(n) for n in settings.tls_names}
    return names


def _host_addresses() -> list[str]:
    """Every unicast address of this host and its name, for a certificate of a wildcard bind."""
    out: list[str] = []
    try:
        import psutil
        for addrs in psutil.net_if_addrs().values():
            for a in addrs:
                if a.family in (socket.AF_INET, socket.AF_INET6):
                    text = a.address.split("%", 1)[0]
                    try:
                        ip = ipaddress.ip_address(text)
                    except ValueError:
                        continue
                    if not ip.is_link_local:
                        out.append(str(ip))
    except Exception:  # interface listing is a convenience, never a reason not to start
        pass
    try:
        out.append(socket.gethostname())
    except OSError:
        pass
    return out


def resolve_certificate(settings: PasarGuardSettings, data_dir: Path) -> tuple[Path, Path]:
    """(cert path, key path) the face serves with, generating one when needed."""
    if settings.tls_cert:
        for what, path in (("tls.cert", settings.tls_cert), ("tls.key", settings.tls_key)):
            if not Path(path).is_file():
                raise OSError(f"pasarguard.{what}: {path} is not a readable file")
        return Path(settings.tls_cert), Path(settings.tls_key)
    needed = required_names(settings)
    default_cert, default_key = ensure_certificate(data_dir)
    if needed <= certificate_names(default_cert):
        return default_cert, default_key
    cert_path, key_path = data_dir / "tls" / "pasarguard.crt", data_dir / "tls" / "pasarguard.key"
    if cert_path.exists() and key_path.exists() and needed <= certificate_names(cert_path):
        return cert_path, key_path
    names = [*LOOPBACK_NAMES, *sorted(needed)]
    wildcard = settings.listen[0] in WILDCARD_HOSTS or (
        settings.grpc_listen is not None and settings.grpc_listen[0] in WILDCARD_HOSTS)
    if wildcard:
        names += _host_addresses()
    cert_pem, key_pem = make_self_signed(names, common_name="fastpath PasarGuard node")
    write_private(key_path, key_pem)
    write_private(cert_path, cert_pem)
    log.info("generated %s for %s", cert_path, ", ".join(dict.fromkeys(names)))
    return cert_path, key_path


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """TLS for the REST port: HTTP/1.1 only.  No ALPN is selected, so a client that offers only
    ``h2`` (as the panel's REST client does) still completes the handshake and speaks HTTP/1.1."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    return ctx
