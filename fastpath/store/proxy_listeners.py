"""Proxy listeners made at run time (HY2 SCALE ``/api/proxies``): one settings row, a JSON list.

Each entry is the face's shape, ``{id, protocol (socks5 | http | shadowsocks), listen
("host:port"), enabled, tls_cert, method, exit_via, exit_paths, exit_mode}``, validated by the
face before it is written.  The whole list is replaced in one transaction, so a worker that
reads it sees every change or none; workers read it at start, on the ``proxies_changed``
command and every few seconds (``fastpath.inbounds.live``).
"""
from __future__ import annotations

from fastpath.store.state_store import StateStore

PROXIES_KEY = "hy2scale.proxies"


def list_proxy_listeners(store: StateStore) -> list[dict]:
    raw = store.get_setting(PROXIES_KEY, []) or []
    return [p for p in raw if isinstance(p, dict) and isinstance(p.get("id"), str)]


def replace_proxy_listeners(store: StateStore, rows: list[dict], expect: list[dict] | None = None) -> bool:
    """Write ``rows`` as the whole list.  With ``expect``, only if the stored list still is
    ``expect`` (another API process may have changed it since it was read): False if not."""
    if expect is None:
        store.set_setting(PROXIES_KEY, rows)
        return True
    return store.swap_setting(PROXIES_KEY, rows, expect, default=[])
