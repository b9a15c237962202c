"""The ``settings/ui`` document, with the reference's keys, and what each one does here.

The reference UI reads the whole document and PUTs it back whole from two forms, so every key
it knows is answered and accepted.  As in the reference, a PUT changes only the keys it gives
(null counts as not given: the UI's empty number inputs become null), ignores keys it does not
know, and answers 400 with a message for a key of the wrong type, before anything is stored.

What each key does on this node:

- ``session_timeout_h`` (hours; 0 means the default 12, as the reference) is applied: the
  sliding token TTL.  ``session_timeout`` (seconds) is this face's older spelling of it.
- ``listen``, ``base_path``, ``force_https``, ``https_cert_id`` are fixed by the node config
  (the control port's address, the face's mount point, no TLS on the control port): GET shows
  the real values; a PUT with a different value changes nothing and says so.
- The nested-discovery limits (``max_nested_depth``, ``max_response_nodes``,
  ``max_cache_entries``, ``max_response_bytes``, ``max_fetch_fan_out``) are applied by the
  workers' nested discovery (``fastpath.mesh.nested``) from its next refresh, clamped to the
  reference's ranges on the way in, so GET shows what is in force.
- ``dns``, ``relay_admin_passthrough`` and ``dns_resolver_*`` are stored and returned (a UI
  round trip keeps them) but nothing on this node reads them yet: no VPN inbound takes a DNS
  push, relay admin requests are not served, and domain rules match the requested name itself
  (``fastpath.mesh.rules``), so no resolver lookup serves them.

The PUT answer is the full document plus ``status``, ``note``, ``applied`` (keys that took
effect), ``not_applicable`` (``{key: why}``) and ``ignored`` (unknown keys); the reference UI
reads none of it beyond the 2xx.
"""
from __future__ import annotations

import falcon

from fastpath.control.errors import bad_request
from fastpath.mesh.nested import LIMITS

DEFAULT_DNS = "8.8.8.8,1.1.1.1"          # what the reference shows when none is set
DEFAULT_TIMEOUT_H = 12
MAX_TIMEOUT_H = 365 * 24
INT32 = 2 ** 31 - 1

# Nested-discovery limits: (default, maximum) as the reference clamps them (<= 0 → default);
# applied by the workers' nested discovery (fastpath.mesh.nested).
NESTED = LIMITS
# DNS resolver: stored as given, 0 = the reference's default (the UI shows it as placeholder).
RESOLVER_INTS = ("dns_resolver_cache_ttl", "dns_resolver_negative_ttl", "dns_resolver_cache_size",
                 "dns_resolver_query_timeout_ms")
FIXED = ("listen", "base_path", "force_https", "https_cert_id")
KINDS = {"listen": str, "base_path": str, "dns": str, "force_https": bool, "https_cert_id": str,
         "session_timeout_h": int, "session_timeout": int, "relay_admin_passthrough": bool,
         "dns_resolver_enabled": bool, **{k: int for k in NESTED}, **{k: int for k in RESOLVER_INTS}}
# Keys kept in the store's row (and so in a backup's "ui").
STORED = ("dns", "session_timeout", "relay_admin_passthrough", "dns_resolver_enabled",
          *NESTED, *RESOLVER_INTS)

WHY_FIXED = {
    "listen": "the control API's address is set by the node config (control.listen) and needs a restart",
    "base_path": "the HY2 SCALE face is always served under /scale",
    "force_https": "the control port serves no TLS on this node; put a TLS proxy in front of it",
    "https_cert_id": "the control port serves no TLS on this node; put a TLS proxy in front of it",
}
WHY_STORED = {
    "dns": "stored; this node has no VPN inbound that pushes DNS and no rule resolver",
    "relay_admin_passthrough": "stored; this node serves no relay-delivered admin requests",
    **{k: "stored; this node has no rule engine whose lookups a resolver would serve"
       for k in ("dns_resolver_enabled", *RESOLVER_INTS)},
}


def clamp_nested(name: str, value: int) -> int:
    default, top = NESTED[name]
    return default if value <= 0 else min(value, top)


def check_value(name: str, value):
    """``value`` for key ``name`` if its type and range are right, else 400."""
    kind = KINDS[name]
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad_request(f"{name} must be an integer")
        if name == "session_timeout_h" and not 0 <= value <= MAX_TIMEOUT_H:
            raise bad_request(f"session_timeout_h must be 0 (the default, 12) to {MAX_TIMEOUT_H} hours")
        if name == "session_timeout" and not 60 <= value <= MAX_TIMEOUT_H * 3600:
            raise bad_request(f"session_timeout must be an integer from 60 to {MAX_TIMEOUT_H * 3600}")
        if name in RESOLVER_INTS and not 0 <= value <= INT32:
            raise bad_request(f"{name} must be an integer from 0 to {INT32}")
        if name in NESTED and not -INT32 <= value <= INT32:
            raise bad_request(f"{name} must be a 32-bit integer")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise bad_request(f"{name} must be true or false")
        return value
    if not isinstance(value, str) or len(value) > 256 or any(not c.isprintable() for c in value):
        raise bad_request(f"{name} must be text of at most 256 characters")
    return value


def view(stored: dict, fixed: dict, default_ttl: float) -> dict:
    """The document GET answers: ``fixed`` holds listen/base_path/force_https/https_cert_id."""
    seconds = int(stored.get("session_timeout") or default_ttl)
    hours = seconds / 3600
    doc = dict(fixed)
    doc.update({
        "dns": stored.get("dns") or DEFAULT_DNS,
        "session_timeout_h": int(hours) if hours == int(hours) else round(hours, 3),
        "session_timeout": seconds,
        "relay_admin_passthrough": bool(stored.get("relay_admin_passthrough", False)),
        "dns_resolver_enabled": bool(stored.get("dns_resolver_enabled", True)),
    })
    for name in NESTED:
        doc[name] = clamp_nested(name, int(stored.get(name) or 0))
    for name in RESOLVER_INTS:
        doc[name] = int(stored.get(name) or 0)
    return doc


def parse_put(body: dict, fixed: dict) -> tuple[dict, list, dict, list]:
    """(changes to the stored row, applied keys, {key: why not applicable}, ignored keys) of
    a PUT body; 400 on the first bad value, before anything is stored."""
    changes: dict = {}
    applied: list = []
    not_applicable: dict = {}
    ignored = sorted(k for k in body if k not in KINDS)
    for name in KINDS:
        if body.get(name) is None:
            continue
        value = check_value(name, body[name])
        if name in FIXED:
            if value != fixed[name]:
                not_applicable[name] = WHY_FIXED[name]
        elif name == "session_timeout_h":
            changes["session_timeout"] = (value or DEFAULT_TIMEOUT_H) * 3600
            applied.append(name)
        elif name == "session_timeout":
            if body.get("session_timeout_h") is None:
                changes["session_timeout"] = value
                applied.append(name)
        else:
            changes[name] = clamp_nested(name, value) if name in NESTED else value
            if name in NESTED:
                applied.append(name)
            else:
                not_applicable[name] = WHY_STORED[name]
    return changes, applied, not_applicable, ignored


def check_stored(rec) -> dict:
    """A backup's ``ui`` row: only stored keys, each of the right type; 400 otherwise."""
    if not isinstance(rec, dict):
        raise bad_request("ui must be a JSON object")
    bad = sorted(set(rec) - set(STORED))
    if bad:
        raise bad_request(f"ui: unknown field {bad[0]!r}")
    out = {}
    for name, value in rec.items():
        try:
            out[name] = check_value(name, value)
        except falcon.HTTPError as exc:
            raise bad_request(f"ui: {exc.description}") from None
    return out
