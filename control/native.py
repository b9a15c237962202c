"""Native API, part one: health, node, users (``/api/v1``)."""
from __future__ import annotations

import math
import secrets
import time

import falcon

from fastpath.control import validation as v
from fastpath.control.auth import bearer_rule
from fastpath.control.node_model import users_changed
from fastpath.control.errors import bad_request, store_refusals
from fastpath.control import native_schemas as schemas
from fastpath.control.openapi import INTEGER, array, obj, path_param
from fastpath.control.route_guard import PUBLIC
from fastpath import __version__
from fastpath.store import User

USER_FIELDS = {"id", "auth_secret", "enabled", "traffic_limit", "expiry", "inbounds"}


def user_view(user: User, totals: dict, live: dict, used: dict | None = None) -> dict:
    tx, rx = totals.get(user.id, (0, 0))
    rec = live.get(user.id)
    spent = (used or {}).get(user.id, tx + rx)
    return {
        "id": user.id,
        "auth_secret": user.auth_secret,
        "enabled": user.enabled,
        "traffic_limit": user.traffic_limit,
        "expiry": v.iso(user.expiry),
        "inbounds": user.inbounds,
        "source": user.source,
        "created": v.iso(user.created),
        "tx": tx,
        "rx": rx,
        "used": spent,
        "online": rec[2] if rec else 0,
        "refused": user.refused_reason(spent),
    }


# Unix seconds this API accepts for ``expiry``: from 2001-09-09 (1e9) to 5138 (1e11).  A
# smaller number is almost always a duration or a typo (12345 would be 1970, an already
# expired user); a larger one is a time in milliseconds.  ISO 8601 strings are taken as given,
# a past one included (that disables the user at once, which an operator may mean).
EXPIRY_MIN, EXPIRY_MAX = 1e9, 1e11


def expiry(body: dict) -> float | None:
    value = body["expiry"]
    ts = v.timestamp(body, "expiry")
    if isinstance(value, (int, float)) and ts is not None:
        if not math.isfinite(ts):
            raise bad_request(f"expiry {value!r} is not a time")
        if ts < EXPIRY_MIN:
            raise bad_request(f"expiry {value!r} is unix seconds in {1970 + int(ts // 31_557_600)}: "
                              "give unix seconds (e.g. 1767225600) or an ISO 8601 time "
                              "(e.g. 2026-01-01T00:00:00Z); null for never")
        if ts >= EXPIRY_MAX:
            raise bad_request(f"expiry {value!r} is too large for unix seconds (milliseconds?)")
    return ts


def parse_user_fields(body: dict) -> dict:
    """Validate every given field first; nothing is applied if one is wrong."""
    out = {}
    if "auth_secret" in body:
        out["auth_secret"] = v.string(body, "auth_secret", max_len=512)
    if "enabled" in body:
        out["enabled"] = v.boolean(body, "enabled")
    if "traffic_limit" in body:
        out["traffic_limit"] = v.integer(body, "traffic_limit")
    if "expiry" in body:
        out["expiry"] = expiry(body)
    if "inbounds" in body:
        out["inbounds"] = v.string_list(body, "inbounds")
    return out


class Health:
    auth_rule = PUBLIC      # probes and load balancers ask without a token

    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        status = self.node.status()
        workers = [c for c in (status or {}).get("children", []) if c["shard"] is not None]
        alive = sum(1 for c in workers if c["alive"])
        # Healthy means serving: a worker that runs but has not said "ready" yet (first start,
        # or a restart in progress) does not count, so a probe never sees a half-started node.
        ready = sum(1 for c in workers if c.get("ready"))
        healthy = status is not None and ready == len(workers) and workers
        resp.status = falcon.HTTP_200 if healthy else falcon.HTTP_503
        resp.media = {
            "status": "healthy" if healthy else "degraded",
            "version": __version__,
            "uptime": round(status["uptime"], 3) if status else None,
            "workers": len(workers),
            "workers_alive": alive,
            "workers_ready": ready,
            # Crashes of running children (workers, control API) the supervisor restarted.
            "restarts": sum(c.get("restarts", 0) for c in (status or {}).get("children", [])),
        }


class Ping:
    """Cheapest possible answer of the control API (probes; the benchmark's baseline)."""

    auth_rule = PUBLIC

    def on_get(self, req, resp):
        resp.media = {"pong": True}


class Node:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        cfg = self.node.config
        status = self.node.status() or {}
        table = self.node.table
        resp.media = {
            "name": cfg.name,
            "version": __version__,
            "uptime": status.get("uptime"),
            "data_dir": str(cfg.data_dir),
            "listeners": listeners(cfg),
            "control": {"listen": f"{cfg.control.host}:{cfg.control.port}"},
            "traffic_stats": {"listen": "%s:%d" % cfg.traffic_stats.listen
                              if cfg.traffic_stats.listen else None},
            "counters": {"segment_id": f"{table.segment_id:016x}", "shards": table.nshards,
                         "slots_per_shard": table.slots_per_shard,
                         "shards_info": [table.shard_info(i) for i in range(table.nshards)]},
            "children": status.get("children", []),
        }


def listeners(cfg) -> list[dict]:
    """Every port the node listens on, from its config: the list the supervisor checks before
    any child starts (``port_check.node_ports``), so the two never disagree."""
    from fastpath.supervisor.port_check import node_ports
    out = []
    for p in node_ports(cfg):
        host = f"[{p.host}]" if ":" in p.host else p.host
        out.append({"name": p.what, "protocol": p.proto, "listen": f"{host}:{p.port}"})
    return out


class Users:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        live = self.node.live_users()
        totals = self.node.user_totals(live)
        used = self.node.ledger.usage(live=live)
        users = self.node.ledger.users()
        resp.media = {"users": [user_view(u, totals, live, used) for u in users], "total": len(users)}

    def on_post(self, req, resp):
        body = v.json_object(req, allowed=USER_FIELDS, required={"id"})
        user_id = v.string(body, "id", pattern=v.USER_ID, max_len=63)
        fields = parse_user_fields(body)
        user = User(id=user_id, auth_secret=fields.pop("auth_secret", None) or secrets.token_urlsafe(18),
                    created=time.time(), **fields)
        with store_refusals():
            self.node.ledger.create_user(user)
        users_changed(self.node, resp)
        resp.status = falcon.HTTP_201
        resp.media = user_view(user, {}, {})


class UserItem:
    def __init__(self, node):
        self.node = node

    def _view(self, user) -> dict:
        live = self.node.live_users()
        return user_view(user, self.node.user_totals(live), live, self.node.ledger.usage([user.id], live))

    def on_get(self, req, resp, user_id):
        with store_refusals():
            user = self.node.ledger.get_user(user_id)
        resp.media = self._view(user)

    def on_patch(self, req, resp, user_id):
        body = v.json_object(req, allowed=USER_FIELDS - {"id"})
        fields = parse_user_fields(body)
        if not fields:
            raise bad_request("nothing to change")
        with store_refusals():
            user = self.node.ledger.update_user(user_id, **fields)
        users_changed(self.node, resp)
        resp.media = self._view(user)

    on_put = on_patch

    def on_delete(self, req, resp, user_id):
        with store_refusals():
            self.node.ledger.delete_user(user_id)
        users_changed(self.node, resp)
        resp.status = falcon.HTTP_204


USER_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "description": "id is required to create and cannot be changed",
    "properties": {
        "id": {"type": "string", "pattern": v.USER_ID.pattern},
        "auth_secret": {"type": "string", "description": "Hysteria 2 auth string; generated if omitted"},
        "enabled": {"type": "boolean"},
        "traffic_limit": {"type": "integer", "minimum": 0, "description": "bytes (tx+rx), 0 = unlimited"},
        "expiry": {"oneOf": [{"type": "string", "format": "date-time"},
                             {"type": "number", "minimum": 1e9, "exclusiveMaximum": 1e11,
                              "description": "unix seconds"},
                             {"type": "null"}],
                   "description": "when the user stops being accepted; null = never.  Numbers "
                                  "are unix seconds from 1e9 (2001) on: a smaller one is refused "
                                  "(400), as a duration or typo would make an expired user"},
        "inbounds": {"type": "array", "items": {"type": "string"}},
    },
}


def register(app: falcon.App, node):
    app.add_route("/api/v1/health", Health(node))
    app.add_route("/api/v1/ping", Ping())
    app.add_route("/api/v1/node", Node(node))
    app.add_route("/api/v1/users", Users(node))
    app.add_route("/api/v1/users/{user_id}", UserItem(node))
    api = node.openapi
    user_ref = api.schema("User", USER_SCHEMA)
    create_ref = api.schema("UserCreate", {**USER_SCHEMA, "required": ["id"]})
    view_ref = api.schema("UserView", schemas.USER_VIEW)
    auth = {401: "no or wrong bearer token"}
    api.add("GET", "/api/v1/health", "Liveness: status, uptime, version, workers alive", tag="native",
            secured=False, response=schemas.HEALTH,
            errors={503: "a worker or the supervisor is down (the same body, status degraded)"},
            error_schema=schemas.HEALTH)
    api.add("GET", "/api/v1/ping", "Answer at once (no supervisor call): cheap probe", tag="native",
            secured=False, response=schemas.PONG)
    api.add("GET", "/api/v1/node", "Node identity, listeners, counter segment, children", tag="native",
            response=schemas.NODE, errors={**auth, 503: "the node is starting"})
    api.add("GET", "/api/v1/users", "List users with traffic used and online connections", tag="native",
            response=obj({"users": array(view_ref), "total": INTEGER}), errors=auth)
    api.add("POST", "/api/v1/users", "Create a user", tag="native", body=create_ref, response=view_ref,
            status=201, errors={**auth, 400: "invalid body", 409: "id or auth secret taken",
                                413: "body too large"})
    for method, summary in (("GET", "Get one user"), ("PATCH", "Change some fields of a user"),
                            ("PUT", "Same as PATCH")):
        api.add(method, "/api/v1/users/{user_id}", summary, tag="native",
                params=[path_param("user_id")], body=user_ref if method in ("PATCH", "PUT") else None,
                response=view_ref, errors={**auth, 404: "unknown user", 400: "invalid body"})
    api.add("DELETE", "/api/v1/users/{user_id}", "Delete a user", tag="native", status=204, empty=True,
            params=[path_param("user_id")], errors={**auth, 404: "unknown user"})
    return bearer_rule(node)
