"""UDP session addresses: "host:port" text to and from (host, port).

The per-packet relay is ``fastpath.hy2.udp_pump`` (Cython); these helpers serve it on the rare
paths (a new destination) and serve the client's local proxies.
"""
from __future__ import annotations

import ipaddress

MAX_NAMES = 64


def split_address(address: str) -> tuple[str, int]:
    """"host:port" or "[v6]:port" → (host, port); ValueError otherwise."""
    if address.startswith("["):
        host, sep, port = address[1:].partition("]:")
    else:
        host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"bad address {address!r}")
    return host, int(port)


def join_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def literal_ip(host: str):
    """The ip_address of a literal IPv4/IPv6 host, None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
