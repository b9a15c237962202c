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
  - type: shadowsocks    # Shadowsocks 2022 (shadowsocks_2022.py): users' keys from their secrets
    listen: 0.0.0.0:8389
    method: 2022-blake3-aes-128-gcm    # or 2022-blake3-aes-256-gcm
    psk: <base64 key>    # optional: the server key of identity headers (clients: "psk:user key")
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

from fastpath.config.fields import ConfigError, Section
from fastpath.inbounds.stream_config import (STREAM_TYPES, check_type, parse_stream_options,
                                             parse_tls_section)

TYPES = ("socks", "http", "shadowsocks", "trojan", "vless", "vmess")
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
    psk: str | None = None              # shadowsocks 2022: the server key (identity headers)
    exit_via: str | None = None         # the exit path ("b" or "b/c") this listener's traffic takes
    exit_paths: tuple[str, ...] = ()    # HY2 SCALE proxies: several paths, chosen by exit_mode
    exit_mode: str = ""                 # "", "quality" or "aggregate" (fastpath.mesh.egress)
    passwords: str = "secret"           # shadowsocks: "secret" (auth secret) or "password"
    # vless / vmess / trojan (stream_config.py): TLS on, the transport and its WebSocket options
    tls: bool = False
    transport: str = "tcp"
    ws_path: str = "/"
    ws_host: str | None = None
    cert_id: str | None = None          # a TLS-store certificate by id (fastpath.tls_ids)

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
        kind = s.str("type", required=True)
        listen = s.listen("listen", required=True)
        tag = s.str("tag", f"{kind}-{listen[1]}")
        check_type(s.key("type"), tag, kind, TYPES)
        auth = s.bool("auth", True)
        method = psk = None
        if kind == "shadowsocks":
            from fastpath.inbounds.shadowsocks_2022 import METHODS_2022, decode_psk
            from fastpath.inbounds.shadowsocks_aead import METHODS
            # "per-user": each user's own method (a panel's inbound; see shadowsocks.py)
            method = s.str("method", required=True,
                           choices=(*METHODS, *METHODS_2022, "per-user"))
            psk = s.str("psk")
            if psk is not None:
                if method not in METHODS_2022:
                    raise ConfigError(s.key("psk"), "only the 2022-blake3 methods take a psk")
                try:
                    decode_psk(psk, METHODS_2022[method])
                except ValueError as exc:
                    raise ConfigError(s.key("psk"), f"{exc} (base64 of {METHODS_2022[method]} random bytes)")
            if not auth:
                raise ConfigError(s.key("auth"), "a Shadowsocks inbound always authenticates")
        fallback = cert = key = cert_id = None
        stream = {}
        if kind == "trojan":
            fallback = s.listen("fallback")
        if kind in STREAM_TYPES:
            stream = parse_stream_options(s, kind, tag)
            cert, key, cert_id = stream.pop("cert"), stream.pop("key"), stream.pop("cert_id")
            if not auth:
                raise ConfigError(s.key("auth"), f"a {kind} inbound always authenticates")
        elif kind in ("socks", "http") and s.has("tls"):
            # socks / http wrapped in TLS (a tls section is given)
            cert, key, cert_id = parse_tls_section(s)
            stream = {"tls": True}
        s.finish()
        if not auth and listen[0] not in LOOPBACK:
            raise ConfigError(s.key("auth"), "an inbound without auth may only listen on loopback")
        out.append(InboundSettings(kind, listen, tag, auth, method, fallback, cert, key, psk,
                                   cert_id=cert_id, **stream))
    tags = [i.tag for i in out]
    for tag in tags:
        if tags.count(tag) > 1:
            raise ConfigError("inbounds", f"tag {tag!r} is used twice")
    listens = [i.listen for i in out]
    for listen in listens:
        if listens.count(listen) > 1:
            raise ConfigError("inbounds", f"{listen[0]}:{listen[1]} is used twice")
    return out
