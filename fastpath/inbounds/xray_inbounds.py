"""A PasarGuard panel's xray ``inbounds`` as this node's inbound entries (node.yaml form).

``from_xray(config)`` reads each inbound (tag, listen, port, protocol, settings,
streamSettings: network, security, TLS certificates, WebSocket path/host) and gives back the
entries ``config.parse_inbounds_config`` checks, or raises ``Unserved`` naming the inbound's
tag and what this node does not have (REALITY, gRPC / XHTTP / ... transports, WireGuard, an
unknown protocol, an inline certificate it cannot place, ...).  Nothing is skipped silently:
Hysteria inbounds are the node's own Hysteria 2 listener and excluded tags are the panel's
choice; every other inbound is served or refused.

Users are not read from ``settings.clients``: the panel sends them with their credentials in
user sync (``control/pasarguard/users.py`` keeps them in ``meta["proxies"]``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from fastpath.inbounds.stream_config import UNSERVED_SECURITY, UNSERVED_TRANSPORTS, UNSERVED_TYPES

HYSTERIA = ("hysteria", "hysteria2")
SERVED = ("vless", "vmess", "trojan", "shadowsocks", "socks", "http")


class Unserved(ValueError):
    """An inbound of the panel's config this node cannot serve (the message names it)."""


@dataclass
class Converted:
    entries: list[dict] = field(default_factory=list)        # node.yaml inbound entries
    certificates: dict[str, tuple[str, str]] = field(default_factory=dict)  # tag -> inline PEM
    hysteria_tags: set[str] = field(default_factory=set)


def _obj(value, tag: str, what: str) -> dict:
    """``value`` as an object (absent: empty); Unserved naming the field otherwise."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Unserved(f"inbound {tag!r}: {what} is not an object")
    return value


def _text(value, tag: str, what: str, default: str = "") -> str:
    if value is None:
        return default
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise Unserved(f"inbound {tag!r}: {what} is not a string")
    return str(value)


def _list(value, tag: str, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Unserved(f"inbound {tag!r}: {what} is not a list")
    return value


def _listen(inbound: dict, tag: str) -> str:
    host = inbound.get("listen") or "0.0.0.0"
    port = inbound.get("port")
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise Unserved(f"inbound {tag!r}: port {port!r} is not served (one port number)")
    if not isinstance(host, str) or host.startswith("/") or host.startswith("@"):
        raise Unserved(f"inbound {tag!r}: listening on {host!r} is not served (an IP address)")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _pem(value) -> str | None:
    if isinstance(value, list):
        return "\n".join(str(v) for v in value) + "\n"
    if isinstance(value, str) and value.strip():
        return value if value.endswith("\n") else value + "\n"
    return None


def _stream(inbound: dict, tag: str, out: Converted, entry: dict) -> None:
    stream = _obj(inbound.get("streamSettings"), tag, "streamSettings")
    network = _text(stream.get("network"), tag, "streamSettings.network", "tcp").lower() or "tcp"
    if network == "raw":
        network = "tcp"
    if network in UNSERVED_TRANSPORTS:
        raise Unserved(f"inbound {tag!r}: {UNSERVED_TRANSPORTS[network]} is not served by this "
                       "node (transports: tcp, ws)")
    if network not in ("tcp", "ws"):
        raise Unserved(f"inbound {tag!r}: network {network!r} is not served (tcp, ws)")
    if network == "tcp":
        tcp = _obj(stream.get("tcpSettings") or stream.get("rawSettings"), tag, "tcpSettings")
        header = _text(_obj(tcp.get("header"), tag, "tcpSettings.header").get("type"), tag,
                       "tcpSettings.header.type", "none")
        if header not in ("none", ""):
            raise Unserved(f"inbound {tag!r}: the TCP {header!r} header obfuscation is not served")
    else:
        ws = _obj(stream.get("wsSettings"), tag, "wsSettings")
        headers = _obj(ws.get("headers"), tag, "wsSettings.headers")
        host = _text(ws.get("host") or headers.get("Host") or headers.get("host"), tag,
                     "wsSettings.host")
        entry["transport"] = {"type": "ws", "path": _text(ws.get("path"), tag, "wsSettings.path") or "/"}
        if host:
            entry["transport"]["host"] = host
    security = _text(stream.get("security"), tag, "streamSettings.security", "none").lower() or "none"
    if security in UNSERVED_SECURITY:
        raise Unserved(f"inbound {tag!r}: {UNSERVED_SECURITY[security]} is not served by this node "
                       "(security tls or none)")
    if security not in ("tls", "none"):
        raise Unserved(f"inbound {tag!r}: security {security!r} is not served (tls, none)")
    if security == "tls":
        tls = _obj(stream.get("tlsSettings"), tag, "tlsSettings")
        certs = _list(tls.get("certificates"), tag, "tlsSettings.certificates")
        if not certs:
            entry["tls"] = True                   # the node's own certificate
            return
        first = _obj(certs[0], tag, "tlsSettings.certificates[0]")
        cert_file = _text(first.get("certificateFile"), tag, "certificateFile")
        key_file = _text(first.get("keyFile"), tag, "keyFile")
        if cert_file and key_file:
            entry["tls"] = {"cert": cert_file, "key": key_file}
            return
        cert, key = _pem(first.get("certificate")), _pem(first.get("key"))
        if not (cert and key):
            raise Unserved(f"inbound {tag!r}: its TLS certificate has neither files nor inline "
                           "certificate and key")
        out.certificates[tag] = (cert, key)
        entry["tls"] = {"cert": f"@{tag}.crt", "key": f"@{tag}.key"}     # placed by the caller
    elif entry["type"] == "trojan":
        raise Unserved(f"inbound {tag!r}: Trojan without TLS is not served (security tls)")


def _entry(inbound: dict, tag: str, out: Converted) -> dict:
    protocol = _text(inbound.get("protocol"), tag, "protocol").lower()
    settings = _obj(inbound.get("settings"), tag, "settings")
    if protocol not in SERVED:
        reason = UNSERVED_TYPES.get(protocol, f"protocol {protocol!r} is not served by this node")
        raise Unserved(f"inbound {tag!r}: {reason} (served: {', '.join(SERVED)}, hysteria)")
    entry: dict = {"type": "socks" if protocol == "socks" else protocol, "tag": tag,
                   "listen": _listen(inbound, tag)}
    if protocol == "vless":
        if _text(settings.get("decryption"), tag, "decryption", "none").lower() not in ("none", ""):
            raise Unserved(f"inbound {tag!r}: VLESS decryption {settings.get('decryption')!r} is "
                           "not served (none)")
        clients = _list(settings.get("clients"), tag, "settings.clients")
        flows = {_text(c.get("flow"), tag, "clients[].flow") for c in clients if isinstance(c, dict)}
        flows |= {_text(settings.get("flow"), tag, "settings.flow")}
        flows -= {"", "none"}
        if flows:
            entry["flow"] = sorted(flows)[0]      # refused by the check, naming the tag
    elif protocol == "shadowsocks":
        method = _text(settings.get("method"), tag, "settings.method")
        if not method:
            clients = [c for c in _list(settings.get("clients"), tag, "settings.clients")
                       if isinstance(c, dict)]
            method = ""
            if len(clients) == 1:       # one fixed client: its method is the inbound's
                method = _text(clients[0].get("method"), tag, "clients[].method")
        # Without a method of the inbound's own, each user brings its own
        # (``shadowsocks.method`` in user sync), as the panel's template has it.
        entry["method"] = {"chacha20-poly1305": "chacha20-ietf-poly1305"}.get(method, method) \
            if method else "per-user"
        if method.startswith("2022-"):
            # Shadowsocks 2022: the inbound's password is the server key of the identity
            # headers; each user's ``shadowsocks.password`` is its own key (as the panel's
            # xray node hands it to xray's shadowsocks_2022 accounts).
            psk = _text(settings.get("password"), tag, "settings.password")
            if psk:
                entry["psk"] = psk
    elif protocol == "trojan":
        for fallback in _list(settings.get("fallbacks"), tag, "settings.fallbacks"):
            dest = fallback.get("dest") if isinstance(fallback, dict) else None
            if isinstance(dest, int) or (isinstance(dest, str) and dest.isdigit()):
                entry["fallback"] = f"127.0.0.1:{dest}"
                break
            if isinstance(dest, str) and ":" in dest and not dest.startswith("/"):
                entry["fallback"] = dest
                break
    elif protocol == "socks":
        entry["auth"] = _text(settings.get("auth"), tag, "settings.auth", "noauth").lower() == "password"
    if protocol in ("vless", "vmess", "trojan"):
        _stream(inbound, tag, out, entry)
    else:
        stream = _obj(inbound.get("streamSettings"), tag, "streamSettings")
        if _text(stream.get("network"), tag, "network", "tcp").lower() not in ("tcp", "raw", "") or \
                _text(stream.get("security"), tag, "security", "none").lower() not in ("none", ""):
            raise Unserved(f"inbound {tag!r}: a {protocol} inbound is served over plain TCP only")
    return entry


def from_xray(config_text: str, exclude=()) -> Converted:
    out = Converted()
    if not config_text or not config_text.strip():
        return out
    try:
        config = json.loads(config_text)
    except ValueError as exc:
        raise Unserved(f"the backend config is not JSON: {exc}") from None
    inbounds = config.get("inbounds") if isinstance(config, dict) else None
    if inbounds is None:
        return out
    if not isinstance(inbounds, list):
        raise Unserved("the backend config's inbounds is not a list")
    excluded = set(exclude)
    for number, inbound in enumerate(inbounds, 1):
        if not isinstance(inbound, dict):
            raise Unserved(f"inbound #{number} is not an object")
        tag = inbound.get("tag")
        if not isinstance(tag, str) or not tag:
            raise Unserved(f"inbound #{number} has no tag")
        if tag in excluded:
            continue
        if str(inbound.get("protocol") or "").lower() in HYSTERIA:
            out.hysteria_tags.add(tag)
            continue
        out.entries.append(_entry(inbound, tag, out))
    return out
