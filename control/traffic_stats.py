"""The Hysteria 2 Traffic Stats API, byte-compatible: ``/traffic``, ``/kick``, ``/online``,
``/dump/streams`` and ``/``.

Served on the control port and, when ``trafficStats.listen`` is set, on that listener too (the
same gunicorn app; requests are told apart by the local port of their socket).  On the
dedicated listener the secret is checked before routing and routing is exact, as in the
reference; on the control port only these routes carry the secret check.

Differences on purpose: ``/kick`` closes every connection of each id at once (the reference
drops one connection lazily, at its next byte); ``trafficStats.listAllUsers: true`` lists every
user of the table in ``/traffic``, with zeros.
"""
from __future__ import annotations

import json
import time

import falcon

from fastpath.control.auth import bearer_token, required_token, token_matches
from fastpath.control import shared_root
from fastpath.control.route_guard import OPEN, PUBLIC, Rule
from fastpath.control.traffic_accounting import traffic_cache
from fastpath.control.traffic_format import TABLE_FORMAT, go_bool
from fastpath.control.traffic_format import TABLE_HEADER as _HEADER_FIELDS

SCOPE = "traffic_stats"
ROUTES = {("GET", "/traffic"), ("POST", "/kick"), ("GET", "/online"), ("GET", "/dump/streams"),
          ("GET", "/")}
PATHS = {path for _m, path in ROUTES}
JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"
TABLE_HEADER = (TABLE_FORMAT % _HEADER_FIELDS).encode()


def _plain(resp: falcon.Response, status, text: str) -> None:
    """Go's ``http.Error``: text body, nosniff."""
    resp.status = status
    resp.content_type = TEXT_TYPE
    resp.set_header("X-Content-Type-Options", "nosniff")
    resp.text = text


def _local_port(req: falcon.Request) -> int | None:
    sock = req.env.get("gunicorn.socket")
    try:
        return sock.getsockname()[1] if sock is not None else None
    except OSError:
        return None


class TrafficStatsGate:
    """The dedicated listener (``trafficStats.listen``) as the reference serves it: the secret
    is checked before routing, for every request, and routing is exact.  On the control port
    the route guard applies :func:`traffic_stats_rule` on the matched route instead."""

    def __init__(self, node):
        ts = node.config.traffic_stats
        self.secret = ts.secret or None
        self.port = ts.listen[1] if ts.listen else None
        if self.port is not None and self.port == node.config.control.port:
            self.port = None  # same listener as the control API: behave as the control port

    def authorized(self, req) -> bool:
        return self.secret is None or token_matches(req.get_header("Authorization") or "", self.secret)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.port is None or _local_port(req) != self.port:
            return
        path = req.env.get("PATH_INFO", req.path)
        if not self.authorized(req):
            _plain(resp, falcon.HTTP_401, "unauthorized\n")
            resp.complete = True
        elif (req.method, path) not in ROUTES:
            _plain(resp, falcon.HTTP_404, "404 page not found\n")
            resp.complete = True


class TrafficStatsRefused(Exception):
    """Refused by the secret: answered as the reference does (plain text 401)."""


def traffic_stats_rule(node, gate: TrafficStatsGate) -> Rule:
    """The secret as the reference checks it (the raw ``Authorization`` header).

    Without a secret the reference's API is open; on a control port that is reachable beyond
    loopback (or has ``control.token``) that would publish every user's traffic and let anyone
    kick, so there the control token is asked instead (raw, as a secret, or as a bearer)."""
    fallback = None if gate.secret is not None else required_token(node)

    def check(req: falcon.Request, resource) -> None:
        if gate.port is not None and _local_port(req) == gate.port:
            return      # the gate has checked the dedicated listener already, as the reference
        if fallback is not None:
            given = req.get_header("Authorization") or ""
            if token_matches(bearer_token(req), fallback) or token_matches(given, fallback):
                return
        elif gate.authorized(req):
            return
        raise TrafficStatsRefused()

    return Rule("traffic_stats", check)


def _refused(req, resp, exc, params) -> None:
    _plain(resp, falcon.HTTP_401, "unauthorized\n")


class Traffic:
    def __init__(self, node):
        self.node = node
        self.list_all = node.config.traffic_stats.list_all_users

    def on_get(self, req, resp):
        clear = go_bool(req.get_param("clear"))
        resp.content_type = JSON_TYPE
        resp.data = traffic_cache(self.node, SCOPE, self.list_all).traffic(clear)


class Kick:
    def __init__(self, node):
        self.node = node

    def on_post(self, req, resp):
        try:
            ids = json.loads(req.bounded_stream.read(1 << 20) or b"null")
        except ValueError:
            ids = None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            _plain(resp, falcon.HTTP_400, "request body must be a JSON array of client ids\n")
            return
        if ids:
            self.node.command("kick", {"ids": ids})
        resp.status = falcon.HTTP_200
        resp.content_type = None
        resp.text = ""


class Online:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        resp.content_type = JSON_TYPE
        resp.data = traffic_cache(self.node, SCOPE).online()


class DumpStreams:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        text = "text/plain" in (req.get_header("Accept") or "")
        resp.content_type = TEXT_TYPE if text else JSON_TYPE
        resp.data = traffic_cache(self.node, SCOPE).dump_streams(time.time_ns(), text, TABLE_HEADER)


class Index:
    auth_rule = PUBLIC

    def on_get(self, req, resp):
        resp.content_type = "text/html; charset=utf-8"
        resp.text = ("<!DOCTYPE html><html><head><title>Traffic Stats</title></head><body>"
                     "<h1>Traffic Stats API</h1><ul>"
                     "<li><a href=\"/traffic\">GET /traffic</a></li><li>POST /kick</li>"
                     "<li><a href=\"/online\">GET /online</a></li>"
                     "<li><a href=\"/dump/streams\">GET /dump/streams</a></li></ul></body></html>\n")


# The reference's bodies (shared/spec/traffic-stats-api.md): maps keyed by auth id; refusals
# are Go's ``http.Error`` text.
TRAFFIC_BODY = {"type": "object", "additionalProperties": {
    "type": "object", "required": ["tx", "rx"], "additionalProperties": False,
    "properties": {"tx": {"type": "integer"}, "rx": {"type": "integer"}}}}
ONLINE_BODY = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0},
               "description": "authenticated QUIC connections per id"}
DUMP_STREAM = {"type": "object", "additionalProperties": False,
               "required": ["state", "auth", "connection", "stream", "req_addr", "hooked_req_addr",
                            "tx", "rx", "initial_at", "last_active_at"],
               "properties": {"state": {"type": "string", "enum": ["init", "hook", "connect", "estab", "closed"]},
                              "auth": {"type": "string"}, "connection": {"type": "integer"},
                              "stream": {"type": "integer"}, "req_addr": {"type": "string"},
                              "hooked_req_addr": {"type": "string"}, "tx": {"type": "integer"},
                              "rx": {"type": "integer"},
                              "initial_at": {"type": "string", "format": "date-time"},
                              "last_active_at": {"type": "string", "format": "date-time"}}}
DUMP_BODY = {"type": "object", "required": ["streams"], "additionalProperties": False,
             "properties": {"streams": {"type": "array", "items": DUMP_STREAM}}}
TEXT = {"type": "string"}


def document(api) -> None:
    tag = "traffic-stats"
    refusals = {401: "the secret (or, without one, the control token) is missing or wrong"}
    # The reference's bytes, whatever the request's Accept (compiled JSON, no msgpack).
    plain = {"error_schema": TEXT, "error_type": "text/plain", "msgpack": False}
    clear = {"name": "clear", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "Go's strconv.ParseBool: 1, t, T, TRUE, true or True clear after reading"}
    api.add("GET", "/traffic", "Traffic per auth id since the last clear (?clear=1 clears)", tag=tag,
            secured=False, response=TRAFFIC_BODY, errors=refusals, params=[clear], **plain)
    api.add("POST", "/kick", "Close every connection of the listed ids (JSON array)", tag=tag,
            secured=False, empty=True, errors={**refusals, 400: "body is not a JSON array of strings"},
            body={"type": "array", "items": {"type": "string"}}, **plain)
    api.add("GET", "/online", "Authenticated connections per id", tag=tag, secured=False,
            response=ONLINE_BODY, errors=refusals, **plain)
    api.add("GET", "/dump/streams", "TCP streams (JSON, or a text table with Accept: text/plain)",
            tag=tag, secured=False, errors=refusals, **plain,
            content={"application/json": DUMP_BODY,
                     "text/plain": {"type": "string", "description": "the reference's table, header first"}})


def register(app: falcon.App, node):
    gate = TrafficStatsGate(node)
    app.add_middleware(gate)
    app.add_error_handler(TrafficStatsRefused, _refused)
    app.add_route("/traffic", Traffic(node))
    app.add_route("/kick", Kick(node))
    app.add_route("/online", Online(node))
    app.add_route("/dump/streams", DumpStreams(node))
    rule = traffic_stats_rule(node, gate)
    index = Index()
    # ``/`` is shared with the stream face on the control port (control/shared_root.py): the
    # index answers its dedicated listener always, and browsers on the control port.
    if not shared_root.claim(node, "traffic_stats", index, OPEN, fallback=True,
                             wants=lambda req: gate.port is not None and _local_port(req) == gate.port):
        app.add_route("/", index)
    document(node.openapi)
    return rule
