"""The face's shared state: the node model, its settings, and the store rows it keeps.

Everything the face remembers lives in the state store's ``settings`` table under keys that
start with ``hy2scale.`` (credentials, tokens, login failures, node settings, UI settings,
layout), and its users in the ``users`` table with source ``hy2scale``: every control-API
process sees the same state, and no schema migration is needed.
"""
from __future__ import annotations

import falcon

from fastpath.control.hy2scale.config import ScaleSettings

PREFIX = "hy2scale."
UI_KEY = PREFIX + "ui"
NODE_KEY = PREFIX + "node"
LAYOUT_KEY = PREFIX + "layout"
LAYOUT_VERSION_KEY = PREFIX + "layout_version"
BASE = "/scale/api"


def not_supported(message: str) -> falcon.HTTPError:
    return falcon.HTTPError(falcon.HTTP_501, title="not supported", description=message)


class ScaleFace:
    def __init__(self, node):
        self.node = node
        self.settings: ScaleSettings = node.config.sections.get("scale") or ScaleSettings()

    @property
    def store(self):
        return self.node.store

    @property
    def ledger(self):
        """The node's ledger (``fastpath.store.ledger``): every read and write of the face."""
        return self.node.ledger

    def setting(self, key: str, default=None):
        return self.ledger.setting(key, default)

    def fixed_ui(self) -> dict:
        """The ``settings/ui`` keys the node config decides (see ``ui_settings.py``)."""
        c = self.node.config.control
        host = f"[{c.host}]" if ":" in c.host else c.host
        return {"listen": f"{host}:{c.port}", "base_path": "/scale", "force_https": False,
                "https_cert_id": ""}

    def ui_settings(self) -> dict:
        from fastpath.control.hy2scale import ui_settings
        return ui_settings.view(self.setting(UI_KEY, {}) or {}, self.fixed_ui(), self.settings.token_ttl)

    def token_ttl(self) -> float:
        stored = self.setting(UI_KEY, {}) or {}
        return float(stored.get("session_timeout") or self.settings.token_ttl)

    def tell_workers(self, cmd: str, args: dict) -> list:
        """Broadcast ``cmd`` to every data-plane worker; their answers (503 if the supervisor
        cannot be reached)."""
        return self.node.command("broadcast", {"cmd": cmd, "args": args, "timeout": 5}, 8.0) or []


def write_setting(db, key: str, value) -> None:
    """Inside ``ledger.write()`` (``db`` is its ``Book``): set one settings row."""
    db.set_setting(key, value)


def read_setting(db, key: str, default=None):
    """Inside ``ledger.read()`` or ``ledger.write()``: one settings row."""
    return db.setting(key, default)
