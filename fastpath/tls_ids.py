"""Certificates of the node's TLS store by id, for the listeners.

The store (the HY2 SCALE face's TLS page, ``control/hy2scale/tls_store.py``) keeps each entry
as ``<data dir>/tls-store/<id>.crt`` and ``<id>.key``.  A listener's config names one by id
(``tls: {certId: <id>}``, Hysteria 2 and the proxy inbounds) instead of by paths; the files
are looked up when the listener starts, and the node's start-up checks
(``fastpath.supervisor.preflight``) refuse an id without a certificate and a matching key.
"""
from __future__ import annotations

import re
from pathlib import Path

STORE_DIR = "tls-store"
CERT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def store_files(data_dir, cert_id: str) -> tuple[str, str]:
    """(certificate path, key path) of stored certificate ``cert_id``; ``LookupError`` with
    the reason when the store does not hold it with a key."""
    if not CERT_ID.match(cert_id or ""):
        raise LookupError(f"{cert_id!r} is not a certificate id")
    base = Path(data_dir) / STORE_DIR
    cert, key = base / f"{cert_id}.crt", base / f"{cert_id}.key"
    if not cert.is_file():
        raise LookupError(f"the TLS store has no certificate {cert_id!r} ({cert})")
    if not key.is_file():
        raise LookupError(f"the TLS store's certificate {cert_id!r} has no private key")
    return str(cert), str(key)
