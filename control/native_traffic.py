"""Native API, part two: live traffic, connections, streams, per-user reset and kick."""
from __future__ import annotations

import falcon

from fastpath.control import validation as v
from fastpath.control.auth import bearer_rule
from fastpath.control.node_model import users_changed
from fastpath.control.errors import bad_request, store_refusals
from fastpath.control import native_schemas as schemas
from fastpath.control.openapi import path_param, query
from fastpath.control.traffic_accounting import traffic_cache
from fastpath.store.ledger import USAGE
from fastpath.shm import (
    KIND_CONNECTION,
    KIND_NAMES,
    KIND_TCP_STREAM,
    KIND_UDP_SESSION,
    STATE_NAMES,
)

STREAM_KINDS = {"tcp": KIND_TCP_STREAM, "udp": KIND_UDP_SESSION}


def _page(req) -> tuple[int, int]:
    try:
        offset = int(req.get_param("offset") or 0)
        limit = int(req.get_param("limit") or 100)
    except ValueError:
        raise bad_request("offset and limit must be integers") from None
    if offset < 0 or not 1 <= limit <= 10000:
        raise bad_request("offset must be >= 0 and limit from 1 to 10000")
    return offset, limit


def _ns_iso(ns: int) -> str:
    return v.iso(ns / 1e9)


def traffic_media(node) -> dict:
    """``/api/v1/traffic`` as a document (msgpack answers; the spec of the compiled JSON)."""
    live = node.live_users()
    totals = node.user_totals(live)
    users = {}
    for uid in sorted(totals):
        tx, rx = totals[uid]
        rec = live.get(uid)
        users[uid] = {"tx": tx, "rx": rx, "online": rec[2] if rec else 0,
                      "streams": rec[3] if rec else 0,
                      "last_active": _ns_iso(rec[4]) if rec and rec[4] else None}
    return {"users": users, "total": len(users)}


class Traffic:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        if "msgpack" in (req.accept or ""):
            resp.media = traffic_media(self.node)
            return
        # The same bytes Falcon's JSON handler would write for traffic_media(), from C.
        resp.content_type = falcon.MEDIA_JSON
        resp.data = traffic_cache(self.node, "traffic_stats").totals()


class Connections:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        offset, limit = _page(req)
        user = req.get_param("user")
        rows = [s for s in self.node.slots([KIND_CONNECTION]) if user is None or s["key"] == user]
        rows.sort(key=lambda s: (s["key"], s["created_ns"]))
        resp.media = {
            "total": len(rows), "offset": offset, "limit": limit,
            "connections": [{"user": s["key"], "remote": s["text_a"], "connection": s["conn_id"],
                             "worker": s["shard"], "since": _ns_iso(s["created_ns"]),
                             "last_active": _ns_iso(s["last_active_ns"]), "tx": s["tx"], "rx": s["rx"]}
                            for s in rows[offset:offset + limit]],
        }


class Streams:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        offset, limit = _page(req)
        kind = req.get_param("kind")
        if kind is not None and kind not in STREAM_KINDS:
            raise bad_request("kind must be tcp or udp")
        state = req.get_param("state")
        if state is not None and state not in STATE_NAMES:
            raise bad_request(f"state must be one of {', '.join(STATE_NAMES)}")
        user = req.get_param("user")
        kinds = [STREAM_KINDS[kind]] if kind else list(STREAM_KINDS.values())
        rows = [s for s in self.node.slots(kinds)
                if (user is None or s["key"] == user)
                and (state is None or STATE_NAMES[min(s["state"], 4)] == state)]
        rows.sort(key=lambda s: (s["key"], s["conn_id"], s["stream_id"]))
        resp.media = {
            "total": len(rows), "offset": offset, "limit": limit,
            "streams": [{"user": s["key"], "kind": KIND_NAMES[s["kind"]],
                         "state": STATE_NAMES[min(s["state"], 4)], "connection": s["conn_id"],
                         "stream": s["stream_id"], "request": s["text_b"], "worker": s["shard"],
                         "since": _ns_iso(s["created_ns"]), "last_active": _ns_iso(s["last_active_ns"]),
                         "tx": s["tx"], "rx": s["rx"]}
                        for s in rows[offset:offset + limit]],
        }


class UserReset:
    """Start a user's count toward its traffic limit again (the monotonic totals and /metrics
    are unaffected)."""

    def __init__(self, node):
        self.node = node

    def on_post(self, req, resp, user_id):
        with store_refusals():
            self.node.ledger.get_user(user_id)
        cleared = self.node.ledger.traffic(USAGE, clear=True, ids=[user_id])[user_id]
        users_changed(self.node, resp)
        resp.media = {"id": user_id, "cleared": {"tx": cleared[0], "rx": cleared[1]}}


class UserKick:
    def __init__(self, node):
        self.node = node

    def on_post(self, req, resp, user_id):
        # An unknown user is a 404, as for reset (a typo must not read as "kicked, 0 open").
        with store_refusals():
            self.node.ledger.get_user(user_id)
        resp.media = self.node.command("kick", {"ids": [user_id]})


class Kick:
    def __init__(self, node):
        self.node = node

    def on_post(self, req, resp):
        body = v.json_object(req, allowed={"ids"}, required={"ids"})
        ids = v.string_list(body, "ids")
        resp.media = self.node.command("kick", {"ids": ids})


def register(app: falcon.App, node):
    app.add_route("/api/v1/traffic", Traffic(node))
    app.add_route("/api/v1/connections", Connections(node))
    app.add_route("/api/v1/streams", Streams(node))
    app.add_route("/api/v1/users/{user_id}/reset", UserReset(node))
    app.add_route("/api/v1/users/{user_id}/kick", UserKick(node))
    app.add_route("/api/v1/kick", Kick(node))
    api, tag = node.openapi, "native"
    auth = {401: "no or wrong bearer token"}
    page = [query("offset", {"type": "integer", "minimum": 0}), query("limit", {"type": "integer", "minimum": 1})]
    api.add("GET", "/api/v1/traffic", "Monotonic tx/rx per id, online connections, live streams", tag=tag,
            response=schemas.TRAFFIC, errors=auth)
    api.add("GET", "/api/v1/connections", "Live connections (remote address, since, tx/rx)", tag=tag,
            params=[query("user", {"type": "string"}), *page], response=schemas.CONNECTIONS,
            errors={**auth, 400: "bad offset or limit"})
    api.add("GET", "/api/v1/streams", "Live TCP streams and UDP sessions", tag=tag,
            params=[query("user", {"type": "string"}), query("state", {"type": "string", "enum": list(STATE_NAMES)}),
                    query("kind", {"type": "string", "enum": ["tcp", "udp"]}), *page],
            response=schemas.STREAMS, errors={**auth, 400: "bad filter"})
    api.add("POST", "/api/v1/users/{user_id}/reset", "Restart a user's count toward its traffic limit",
            tag=tag, params=[path_param("user_id")], response=schemas.RESET,
            errors={**auth, 404: "unknown user"})
    api.add("POST", "/api/v1/users/{user_id}/kick", "Close every connection of a user now", tag=tag,
            params=[path_param("user_id")], response=schemas.KICKED, errors={**auth, 404: "unknown user"})
    api.add("POST", "/api/v1/kick", "Close every connection of the listed users now", tag=tag,
            body={"type": "object", "required": ["ids"], "additionalProperties": False,
                  "properties": {"ids": {"type": "array", "items": {"type": "string"}}}},
            response=schemas.KICKED, errors={**auth, 400: "invalid body"})
    return bearer_rule(node)
