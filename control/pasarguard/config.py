"""The ``pasarguard`` section of the node config: where the PasarGuard node API listens, its
API key, and the TLS certificate the panel pins.

```yaml
pasarguard:
  listen: 127.0.0.1:62050        # protobuf REST over TLS (HTTP/1.1); default 127.0.0.1:62050
  grpcListen: 127.0.0.1:62051    # gRPC over TLS (HTTP/2); optional, off when absent
  apiKey: 4f6c...-...            # a UUID, required: the face refuses to start without one
  inboundTag: hysteria2          # the name of the node's Hysteria 2 listener; default hysteria2
  tls:                           # optional; default: <dataDir>/tls/node.crt + node.key
    cert: /path/node.crt
    key: /path/node.key
    names: [node1.example.com]   # extra SANs of the generated certificate (no cert/key given)
```

REST and gRPC get one port each, as the reference node does (it runs one mode per port): both
clients of the panel offer only ``h2`` in their TLS handshake, so one port could not tell the
REST client (which then speaks HTTP/1.1) from the gRPC one.  The panel picks one mode per node.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from fastpath.config.fields import ConfigError, Section

DEFAULT_LISTEN = "127.0.0.1:62050"
DEFAULT_INBOUND_TAG = "hysteria2"


@dataclass
class PasarGuardSettings:
    listen: tuple[str, int]
    api_key: uuid.UUID
    grpc_listen: tuple[str, int] | None = None
    inbound_tag: str = DEFAULT_INBOUND_TAG
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_names: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:  # a parsed section always means "face on"
        return True


def parse_api_key(value) -> uuid.UUID:
    """A UUID in any of the spellings ``uuid.UUID`` accepts; the nil UUID is refused (it would
    be a key anyone can guess)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a UUID")
    try:
        key = uuid.UUID(value.strip())
    except ValueError:
        raise ValueError(f"not a UUID: {value!r}") from None
    if key.int == 0:
        raise ValueError("the nil UUID is not a usable key")
    return key


def parse_pasarguard_config(raw) -> PasarGuardSettings | None:
    """None when the section is absent (the face is off); otherwise the checked settings."""
    if raw is None:
        return None
    section = Section(raw, "pasarguard")
    listen = section.listen("listen", DEFAULT_LISTEN)
    grpc_listen = section.listen("grpcListen")
    key_text = section.str("apiKey")
    if key_text is None:
        raise ConfigError("pasarguard.apiKey", "is required: the PasarGuard face needs a UUID API key "
                          "(make one with: python -c 'import uuid; print(uuid.uuid4())')")
    try:
        api_key = parse_api_key(key_text)
    except ValueError as exc:
        raise ConfigError("pasarguard.apiKey", str(exc)) from None
    inbound_tag = section.str("inboundTag", DEFAULT_INBOUND_TAG)
    if not inbound_tag:
        raise ConfigError("pasarguard.inboundTag", "must not be empty")
    tls = section.section("tls")
    cert, key = tls.str("cert"), tls.str("key")
    names = tls.list("names")
    tls.finish()
    section.finish()
    if (cert is None) != (key is None):
        raise ConfigError("pasarguard.tls", "give both cert and key, or neither")
    if cert is not None and names:
        raise ConfigError("pasarguard.tls.names", "only applies to the generated certificate "
                                                  "(drop it, or drop cert and key)")
    if not all(isinstance(n, str) and n for n in names):
        raise ConfigError("pasarguard.tls.names", "expected a list of host names or addresses")
    if grpc_listen is not None and _same_port(listen, grpc_listen):
        raise ConfigError("pasarguard.grpcListen", "REST and gRPC need a port each "
                                                   f"(both are on {listen[1]})")
    return PasarGuardSettings(listen=listen, api_key=api_key, grpc_listen=grpc_listen,
                              inbound_tag=inbound_tag, tls_cert=cert, tls_key=key,
                              tls_names=list(names))


WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def _same_port(a: tuple[str, int], b: tuple[str, int]) -> bool:
    if a[1] != b[1] or a[1] == 0:
        return False
    return a[0] == b[0] or a[0] in WILDCARD_HOSTS or b[0] in WILDCARD_HOSTS
