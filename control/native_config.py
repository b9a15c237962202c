"""Native API, the node's config: ``GET /api/v1/config`` (what the node runs with, secrets
hidden, and which parts a reload applies) and ``POST /api/v1/reload`` (the same as SIGHUP:
reread the config file, refuse it whole when it has an error).

Why the split of ``live`` and ``at_restart``: the control API processes restart on a reload and
read the new file, while the data-plane workers keep their listeners, TLS and protocol settings
until the next start (they reread only users and exits).  An operator changing a setting from
the dashboard must see which kind it is before relying on it.
"""
from __future__ import annotations

import re

import falcon

from fastpath.control import native_schemas as schemas
from fastpath.control.auth import bearer_rule

# A key whose value is a credential: shown as "***", and so is everything beneath it (an
# ``auth.userpass`` map holds passwords as values of user names).  Over-eager on purpose.
SECRET_KEY = re.compile(r"pass|secret|token|key|psk|auth|salt|credential", re.IGNORECASE)
HARMLESS_LEAVES = {"type", "mode", "enabled"}
HIDDEN = "***"

LIVE = ("control (token, threads, timeouts: the control API restarts on a reload)",
        "trafficStats.secret", "media.apiToken and the stream API's settings",
        "scale (the HY2 SCALE face's settings)", "pasarguard (the node API face's settings)",
        "users and exits (the workers reread them)")
AT_RESTART = ("listen, tls, obfs, quic, bandwidth, masquerade (Hysteria 2)",
              "media.listen and the relay's buffers",
              "inbounds (those of /api/v1/inbounds move live)", "node.workers, counters")


def redacted(value, hide: bool = False, key: str = ""):
    """``value`` with every credential replaced by ``HIDDEN``."""
    if isinstance(value, dict):
        return {k: redacted(v, hide or bool(SECRET_KEY.search(str(k))), str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v, hide, key) for v in value]
    if hide and key not in HARMLESS_LEAVES and value is not None:
        return HIDDEN
    return value


class Config:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        resp.media = {"config": redacted(self.node.config.raw), "live": list(LIVE),
                      "at_restart": list(AT_RESTART)}


class Reload:
    def __init__(self, node):
        self.node = node

    def on_post(self, req, resp):
        result = self.node.command("reload", {}, timeout=10.0)
        if not result.get("reloaded"):
            raise falcon.HTTPBadRequest(title="config refused",
                                        description=result.get("error") or "the config was refused")
        resp.media = {"reloaded": True, "workers": len(result.get("workers") or [])}


def register(app: falcon.App, node):
    app.add_route("/api/v1/config", Config(node))
    app.add_route("/api/v1/reload", Reload(node))
    api = node.openapi
    api.add("GET", "/api/v1/config", "The node's config (credentials hidden) and which parts a "
            "reload applies", tag="native", response=schemas.CONFIG,
            errors={401: "no or wrong bearer token"})
    api.add("POST", "/api/v1/reload", "Reread the config file, as SIGHUP does", tag="native",
            response=schemas.RELOADED,
            errors={400: "the new config has an error: nothing changed", 401: "no or wrong bearer token",
                    503: "supervisor unavailable"})
    return bearer_rule(node)
