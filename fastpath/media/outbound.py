"""Which addresses the media relay may connect to: stream upstreams (and every redirect they
send), HLS segments and keys, transcode inputs and webhook targets.

Why this module exists: the relay fetches URLs that API callers name and hands what it got to
anyone on the public media port.  Without a rule it is a proxy into the node itself (the
control API on loopback), the cloud metadata service (instance credentials) and the private
network behind the node.  So the rule is decided on *addresses*, never on URL text (``127.1``,
``2130706433``, ``[::ffff:127.0.0.1]`` and a name whose record says 127.0.0.1 are all loopback):

* always refused: unspecified (0.0.0.0, ::), link-local (169.254/16, fe80::/10), multicast,
  reserved and documentation ranges, and the metadata addresses (``METADATA``);
* loopback, and any other refused range, only inside ``media.allowUpstreamNetworks`` (for an
  origin on the node's own host, and for test setups);
* private (10/8, 172.16/12, 192.168/16, 100.64/10 CGNAT, fc00::/7) only with
  ``media.allowPrivateUpstreams: true``;
* metadata addresses are refused even then.

The check happens where the connection is made: ``GuardedResolver`` is the resolver of the
relay's aiohttp connectors, so aiohttp connects to exactly the addresses that were checked and
a name that answers a public address for one lookup and 127.0.0.1 for the next (DNS rebinding)
has no second lookup to exploit.  aiohttp does not ask the resolver about literal addresses,
so every request (and every redirect, which callers follow themselves for that reason) first
passes ``check_literal``.  The control API checks registrations with ``refusal_for_url`` as
well, to answer a clear 400 instead of a stream that never plays.
"""
from __future__ import annotations

import ipaddress
import socket

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Instance metadata services: AWS/GCP/Azure/OpenStack/DigitalOcean/Oracle (169.254.169.254),
# AWS ECS task metadata (169.254.170.2), AWS over IPv6 (fd00:ec2::254), Alibaba
# (100.100.100.200), Oracle's older address (192.0.0.192).
METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "192.0.0.192"))

PRIVATE = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"))

_NAT64 = ipaddress.ip_network("64:ff9b::/96")

REDIRECT_STATUSES = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 10


class RefusedAddress(OSError):
    """A connection the outbound rule does not allow (an OSError, so aiohttp reports it as a
    connection error)."""


def _embedded_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4, Teredo client)."""
    if ip.version != 6:
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


class OutboundPolicy:
    """The rule above, with the node's two opt-ins."""

    def __init__(self, allow_private: bool = False, allow_networks=()):
        self.allow_private = bool(allow_private)
        self.allow_networks = tuple(ipaddress.ip_network(n, strict=False) if isinstance(n, str) else n
                                    for n in allow_networks)

    @classmethod
    def from_settings(cls, settings) -> OutboundPolicy:
        return cls(getattr(settings, "allow_private_upstreams", False),
                   getattr(settings, "allow_upstream_networks", ()))

    def refusal(self, ip: IPAddress | str) -> str | None:
        """Why a connection to ``ip`` is refused ("a loopback address"), or None."""
        if isinstance(ip, str):
            ip = ipaddress.ip_address(ip.split("%", 1)[0])
        inner = _embedded_v4(ip)
        if inner is not None:
            why = self.refusal(inner)
            if why is not None:
                return why
        if ip in METADATA:
            return "a cloud metadata address"
        if any(ip.version == n.version and ip in n for n in self.allow_networks):
            return None
        if ip.is_unspecified:
            return "the unspecified address"
        if ip.is_loopback:
            return "a loopback address"
        if ip.is_link_local:
            return "a link-local address"
        if ip.is_multicast:
            return "a multicast address"
        if any(ip.version == n.version and ip in n for n in PRIVATE):
            return None if self.allow_private else "a private address"
        if inner is None and not ip.is_global:
            return "a reserved address"
        return None

    def check_ip(self, host: str, ip: str) -> None:
        why = self.refusal(ip)
        if why is not None:
            raise RefusedAddress(refused_text(host, ip, why))

    def check_literal(self, url) -> None:
        """RefusedAddress when ``url``'s host is a literal address the rule refuses (names are
        checked by ``GuardedResolver`` when the connection is made).  What counts as literal
        is aiohttp's own test (a colon, or only digits and dots), read from the host as aiohttp
        parses it, so nothing aiohttp connects to without asking the resolver goes unchecked."""
        host = _hostname(str(url))
        if host and _looks_literal(host):
            ip = _literal(host)
            if ip is None:
                raise RefusedAddress(f"refused: {host} is not a valid address")
            self.check_ip(host, str(ip))

    def refusal_for_url(self, url: str) -> str | None:
        """Why ``url`` cannot be fetched, after resolving its host here (blocking; for the
        control API's checks of a registration).  A name that does not resolve now is not
        refused: it is checked again on every connection."""
        host = _hostname(url)
        if not host:
            return None
        if _looks_literal(host):
            ip = _literal(host)
            if ip is None:
                return f"refused: {host} is not a valid address"
            why = self.refusal(ip)
            return refused_text(host, host, why) if why else None
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return None
        addresses = [info[4][0] for info in infos]
        reasons = [(a, self.refusal(a)) for a in addresses]
        if reasons and all(why for _, why in reasons):
            address, why = reasons[0]
            return refused_text(host, address, why)
        return None


def refused_text(host: str, address: str, why: str) -> str:
    shown = host if host == address else f"{host} ({address})"
    return (f"refused: {shown} is {why}; the relay does not connect to loopback, link-local, "
            "metadata, reserved or (without media.allowPrivateUpstreams) private addresses")


def _hostname(url: str) -> str | None:
    """The host as aiohttp will see it (yarl's parse, not urllib's)."""
    try:
        return URL(url).raw_host
    except (ValueError, TypeError):
        return None


def _looks_literal(host: str) -> bool:
    return ":" in host or host.replace(".", "").isdigit()


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


class GuardedResolver(AbstractResolver):
    """A resolver that hands aiohttp only the addresses the policy allows, so the connection
    goes to an address that was checked; when none is left the connection fails with
    ``RefusedAddress``."""

    def __init__(self, policy: OutboundPolicy, inner: AbstractResolver | None = None):
        self.policy = policy
        self.inner = inner or aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET):
        infos = await self.inner.resolve(host, port, family)
        kept = [info for info in infos if self.policy.refusal(info["host"]) is None]
        if not kept:
            first = infos[0]["host"] if infos else host
            raise RefusedAddress(refused_text(host, first, self.policy.refusal(first)
                                              or "not an allowed address"))
        return kept

    async def close(self) -> None:
        await self.inner.close()


def connector(policy: OutboundPolicy, **kwargs) -> aiohttp.TCPConnector:
    """A TCP connector whose every connection is checked by ``policy``."""
    return aiohttp.TCPConnector(resolver=GuardedResolver(policy), **kwargs)


def refused_cause(exc: BaseException) -> RefusedAddress | None:
    """The RefusedAddress behind an aiohttp connection error, if that is what it was."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, RefusedAddress):
            return exc
        exc = getattr(exc, "os_error", None) or exc.__cause__ or exc.__context__
        seen += 1
    return None
