"""Which node user a VLESS, VMess, Trojan or Shadowsocks credential names.

A user's credential for a protocol is, in this order:

* the one a panel gave it for that protocol, kept in ``meta["proxies"]`` as the panel sends
  it (PasarGuard: ``{"vless": {"id", "flow"}, "vmess": {"id"}, "trojan": {"password"},
  "shadowsocks": {"password", "method"}}``);
* else one derived from its auth secret: the secret itself as the Trojan or Shadowsocks
  password, and for VLESS and VMess the secret as a UUID when it is one, else the UUID
  version 5 of the secret in the nil namespace (the mapping xray and sing-box both apply to
  a non-UUID id, so a client configured with the same string finds the same user).

Tables are rebuilt when the user directory's table object changes (each reload makes a new
one), so a lookup costs one dict access.
"""
from __future__ import annotations

import uuid

NIL = uuid.UUID(int=0)


def uuid_of(text: str) -> bytes | None:
    """The 16 bytes of a VLESS/VMess id given as a UUID or as any other non-empty string."""
    if not text:
        return None
    try:
        return uuid.UUID(text).bytes
    except ValueError:
        return uuid.uuid5(NIL, text).bytes


def panel_credential(user, protocol: str) -> dict | None:
    proxies = (user.meta or {}).get("proxies")
    entry = proxies.get(protocol) if isinstance(proxies, dict) else None
    return entry if isinstance(entry, dict) else None


def user_uuid(user, protocol: str) -> bytes | None:
    entry = panel_credential(user, protocol)
    if entry is not None:
        return uuid_of(str(entry.get("id") or ""))
    return uuid_of(user.auth_secret or "")


def user_password(user, protocol: str) -> str | None:
    entry = panel_credential(user, protocol)
    if entry is not None:
        return str(entry.get("password") or "") or None
    return user.auth_secret or None


class CredentialIndex:
    """credential -> user id for one protocol, following the directory's table."""

    def __init__(self, users, make_key) -> None:
        self.users = users
        self.make_key = make_key          # user -> key (bytes / str) or None
        self._of = None
        self._index: dict = {}

    def table(self) -> dict:
        by_id = self.users.by_id
        if by_id is not self._of:
            index = {}
            for user in by_id.values():
                key = self.make_key(user)
                if key is not None:
                    index.setdefault(key, user.id)
            self._index, self._of = index, by_id
        return self._index

    def lookup(self, key):
        return self.table().get(key)


def admit(users, user_id: str, tag: str) -> str | None:
    """Why ``user_id`` may not use inbound ``tag`` now (None: it may)."""
    user = users.by_id.get(user_id)
    if user is None:
        return "unknown user"
    if user.inbounds and tag not in user.inbounds:
        return f"not allowed on inbound {tag}"
    return users.refused_reason(user_id)
