"""node.yaml options of the stream inbounds (VLESS, VMess, Trojan): TLS, the transport, and
the refusals of what this node cannot serve, each naming the inbound and what is missing.

```yaml
  - type: vless                 # or vmess
    listen: 0.0.0.0:8443
    tag: vless-ws
    tls: {cert: /path/cert.pem, key: /path/key.pem}   # or tls: true (the node's certificate);
                                                      # absent: no TLS (trojan: always TLS)
    transport: {type: ws, path: /ray, host: example.com}   # default: tcp
```

The same refusals serve the PasarGuard face, whose xray inbounds are checked by
``xray_inbounds.py`` with these words.
"""
from __future__ import annotations

from fastpath.config.fields import ConfigError

STREAM_TYPES = ("vless", "vmess", "trojan")
TRANSPORTS = ("tcp", "ws")
# What a config may ask for that is not served, and how to say so.
UNSERVED_TYPES = {
    "wireguard": "WireGuard inbounds are not served by this node",
    "hysteria": "a Hysteria inbound is the node's own Hysteria 2 listener, not an inbounds entry",
    "hysteria2": "a Hysteria 2 inbound is the node's own Hysteria 2 listener, not an inbounds entry",
    "dokodemo-door": "dokodemo-door (tunnel) inbounds are not served by this node",
    "tunnel": "tunnel inbounds are not served by this node",
}
UNSERVED_TRANSPORTS = {
    "grpc": "the gRPC transport",
    "xhttp": "the XHTTP transport",
    "splithttp": "the XHTTP (splithttp) transport",
    "httpupgrade": "the HTTPUpgrade transport",
    "h2": "the HTTP/2 transport",
    "http": "the HTTP/2 transport",
    "kcp": "the mKCP transport",
    "mkcp": "the mKCP transport",
    "quic": "the QUIC transport",
    "domainsocket": "the domain-socket transport",
}
UNSERVED_SECURITY = {"reality": "REALITY security", "xtls": "XTLS security"}
FLOWS = {"": "", "none": ""}


def refusal(tag: str, what: str, served: str) -> str:
    return f"inbound {tag!r}: {what} is not served by this node ({served})"


def check_type(key: str, tag: str, kind: str, served: tuple[str, ...]) -> None:
    if kind in served:
        return
    reason = UNSERVED_TYPES.get(kind, f"protocol {kind!r} is not served by this node")
    raise ConfigError(key, f"inbound {tag!r}: {reason} (served: {', '.join(served)})")


def parse_tls_section(s) -> tuple[str | None, str | None, str | None]:
    """(cert, key, cert_id) of an entry's ``tls`` section: its own files, or a TLS-store
    certificate by id (``certId``, ``fastpath.tls_ids``), or neither (the node's)."""
    from fastpath.tls_ids import CERT_ID
    tls = s.section("tls")
    cert, key, cert_id = tls.str("cert"), tls.str("key"), tls.str("certId")
    tls.finish()
    if (cert is None) != (key is None):
        raise ConfigError(tls.key("cert"), "give both cert and key, or neither")
    if cert_id is not None and cert is not None:
        raise ConfigError(tls.key("certId"), "give certId or cert and key, not both")
    if cert_id is not None and not CERT_ID.match(cert_id):
        raise ConfigError(tls.key("certId"), f"{cert_id!r} is not a certificate id")
    return cert, key, cert_id


def parse_stream_options(s, kind: str, tag: str) -> dict:
    """TLS, transport and flow of a VLESS / VMess / Trojan entry (``s``: its Section)."""
    out = {"tls": kind == "trojan", "cert": None, "key": None, "cert_id": None, "transport": "tcp",
           "ws_path": "/", "ws_host": None}
    security = s.str("security")
    if security is not None and security.lower() in UNSERVED_SECURITY:
        raise ConfigError(s.key("security"), refusal(tag, UNSERVED_SECURITY[security.lower()],
                                                     "TLS is: give tls"))
    if security is not None and security.lower() not in ("tls", "none"):
        raise ConfigError(s.key("security"), f"inbound {tag!r}: security {security!r} is unknown "
                                             "(tls or none)")
    raw_tls = s.raw.get("tls")
    if isinstance(raw_tls, bool):
        s._get("tls")
        out["tls"] = raw_tls or kind == "trojan"
    elif raw_tls is not None or kind == "trojan" or (security or "").lower() == "tls":
        cert, key, cert_id = parse_tls_section(s)
        out.update(tls=True, cert=cert, key=key, cert_id=cert_id)
    if (security or "").lower() == "none" and out["tls"] and kind != "trojan":
        raise ConfigError(s.key("security"), f"inbound {tag!r}: security none but tls given")
    transport = s.section("transport")
    name = (transport.str("type", "tcp") or "tcp").lower()
    if name in UNSERVED_TRANSPORTS:
        raise ConfigError(transport.key("type"), refusal(tag, UNSERVED_TRANSPORTS[name],
                                                         "transports: tcp, ws"))
    if name not in TRANSPORTS:
        raise ConfigError(transport.key("type"), f"inbound {tag!r}: transport {name!r} is unknown "
                                                 "(tcp, ws)")
    out["transport"] = name
    if name == "ws":
        path = transport.str("path", "/")
        if not path.startswith("/"):
            raise ConfigError(transport.key("path"), "a WebSocket path starts with /")
        out["ws_path"] = path.split("?", 1)[0]
        out["ws_host"] = transport.str("host") or None
    transport.finish()
    if kind == "vless":
        flow = (s.str("flow", "") or "").strip()
        if flow not in FLOWS:
            raise ConfigError(s.key("flow"), refusal(
                tag, f"VLESS flow {flow!r}", "VLESS is served without a flow; xtls-rprx-vision "
                "needs a TLS layer the node can leave mid-stream"))
    return out
