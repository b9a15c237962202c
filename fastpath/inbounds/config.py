"""The ``inbounds`` section of the node config: a list of proxy listeners.

```yaml
inbounds:
  - type: socks          # socks | http | shadowsocks
    listen: 0.0.0.0:1080
    tag: socks-in        # the name users' ``inbounds`` lists use (default: type-port)
    auth: true           # false: open proxy, counted for nobody (loopback only)
  - type: shadowsocks
    listen: 0.0.0.0:8388
    method: aes-256-gcm  # or aes-128-gcm, chacha20-ietf-poly1305; users' passwords: auth secrets
  - type: trojan
    listen: 0.0.0.0:443
    fallback: 127.0.0.1:80   # where a request that is not Trojan goes (else it is closed)
    tls: {cert: /path/cert.pem, key: /path/key.pem}   # default: the node's certificate
  - type: http
    listen: 0.0.0.0:8443
    tls: {certId: web}       # socks/http in TLS; certId: a certificate of the TLS store by id
```
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastpath.tls_ids import CERT_ID

from fastpath.config.fields import ConfigError, Section

TYPES = ("socks", "http", "shadowsocks", "trojan")
LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class InboundSettings:
    type: str
    listen: tuple[str, int]
    tag: str
    auth: bool = True
    method: str | None = None           # shadowsocks: the AEAD cipher
    fallback: tuple[str, int] | None = None   # trojan: where what is not Trojan goes
    cert: str | None = None             # TLS certificate and key (trojan: default the node's)
    key: str | None = None
    cert_id: str | None = None          # a TLS-store certificate by id (fastpath.tls_ids)
    tls: bool = False                   # socks/http: wrapped in TLS (a tls section is given)

    def tls_files(self, data_dir) -> tuple[str, str]:
        if self.cert_id:
            from fastpath.tls_ids import store_files
            return store_files(data_dir, self.cert_id)
        if self.cert and self.key:
            return self.cert, self.key
        return str(Path(data_dir) / "tls" / "node.crt"), str(Path(data_dir) / "tls" / "node.key")


def parse_inbounds_config(raw) -> list[InboundSettings]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError("inbounds", "expected a list of listeners")
    out: list[InboundSettings] = []
    for i, item in enumerate(raw):
        s = Section(item, f"inbounds[{i}]")
        kind = s.str("type", required=True, choices=TYPES)
        listen = s.listen("listen", required=True)
        tag = s.str("tag", f"{kind}-{listen[1]}")
        auth = s.bool("auth", True)
        method = None
        if kind == "shadowsocks":
            from fastpath.inbounds.shadowsocks_aead import METHODS
            method = s.str("method", required=True, choices=tuple(METHODS))
            if not auth:
                raise ConfigError(s.key("auth"), "a Shadowsocks inbound always authenticates")
        fallback = cert = key = cert_id = None
        wrapped = False
        if kind in ("trojan", "socks", "http"):
            if kind == "trojan":
                fallback = s.listen("fallback")
            wrapped = kind == "trojan" or s.has("tls")
            tls = s.section("tls")
            cert, key, cert_id = tls.str("cert"), tls.str("key"), tls.str("certId")
            tls.finish()
            if (cert is None) != (key is None):
                raise ConfigError(tls.key("cert"), "give both cert and key, or neither")
            if cert_id is not None and cert is not None:
                raise ConfigError(tls.key("certId"), "give certId or cert and key, not both")
            if cert_id is not None and not CERT_ID.match(cert_id):
                raise ConfigError(tls.key("certId"), f"{cert_id!r} is not a certificate id")
        if kind == "trojan":
            if not auth:
                raise ConfigError(s.key("auth"), "a Trojan inbound always authenticates")
        s.finish()
        if not auth and listen[0] not in LOOPBACK:
            raise ConfigError(s.key("auth"), "an inbound without auth may only listen on loopback")
        out.append(InboundSettings(kind, listen, tag, auth, method, fallback, cert, key, cert_id, wrapped))
    tags = [i.tag for i in out]
    for tag in tags:
        if tags.count(tag) > 1:
            raise ConfigError("inbounds", f"tag {tag!r} is used twice")
    listens = [i.listen for i in out]
    for listen in listens:
        if listens.count(listen) > 1:
            raise ConfigError("inbounds", f"{listen[0]}:{listen[1]} is used twice")
    return out
