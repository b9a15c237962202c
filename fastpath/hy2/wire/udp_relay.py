"""UDP session addresses: how many names a session resolves, and literal IPs.

The per-packet relay is ``fastpath.hy2.server.udp_pump`` (Cython); these helpers serve it on the rare
paths (a new destination) and serve the client's local proxies.  "host:port" text is parsed by
``fastpath.mesh.paths.split_address``, shared with the control faces.
"""
from __future__ import annotations

import ipaddress

MAX_NAMES = 64


def literal_ip(host: str):
    """The ip_address of a literal IPv4/IPv6 host, None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
