"""Native API, the proxy inbounds: ``/api/v1/inbounds`` lists, makes, changes and removes the
node's SOCKS5, HTTP, Shadowsocks, Trojan, VLESS and VMess listeners while it runs.

An inbound here is an entry of node.yaml's ``inbounds:`` section, in the same form and checked
by the same code (``fastpath.inbounds.config.parse_inbounds_config``), so the two refuse the
same things in the same words.  The node.yaml ones are listed (``managed_by: "config"``) and
cannot be changed here; the API's are kept in the store (``API_SETTING`` of
``fastpath.inbounds.panel_inbounds``) and followed live by every worker, as the PasarGuard
panel's are.

A change is checked whole before anything is applied: the entry parses, its tag is no other
inbound's (node.yaml, the API's, the panel's, HY2 SCALE's proxies), its port no other listener
of this node's and free on the host, its TLS files exist.  Then the list is replaced in one
transaction only if no other API process changed it meanwhile, and every worker is asked to
follow it; when one cannot (it could not bind), the previous list is put back and the answer
is 409 with that worker's reason.  Nothing is half applied.
"""
from __future__ import annotations

import logging
from pathlib import Path

import falcon

from fastpath.config.fields import ConfigError
from fastpath.control import validation as v
from fastpath.control.auth import bearer_rule
from fastpath.control.errors import bad_request, conflict, not_found
from fastpath.control.native_config import HIDDEN
from fastpath.control.node_model import NodeUnavailable
from fastpath.control.openapi import path_param
from fastpath.inbounds.config import InboundSettings, TYPES, parse_inbounds_config
from fastpath.inbounds.live import parse_listen
from fastpath.inbounds.panel_inbounds import API_SETTING, SETTING as PANEL_SETTING
from fastpath.store.proxy_listeners import list_proxy_listeners
from fastpath.supervisor.port_check import Port, node_ports
from fastpath.supervisor.port_check import _probe as probe

log = logging.getLogger("fastpath.control.native")

MAX_INBOUNDS = 256
WORKER_WAIT = 8.0


def _listen_text(listen: tuple[str, int]) -> str:
    host, port = listen
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _ports(settings: InboundSettings) -> list[tuple[int, str]]:
    return [(settings.listen[1], "tcp")] + ([(settings.listen[1], "udp")]
                                           if settings.type == "shadowsocks" else [])


def parse_entry(entry: dict) -> InboundSettings:
    """The settings of one entry, or a 400 with the config checker's message."""
    try:
        return parse_inbounds_config([entry])[0]
    except ConfigError as exc:
        key = exc.key.removeprefix("inbounds[0]").lstrip(".")
        raise bad_request(f"{key}: {exc.problem}" if key else exc.problem) from None


class InboundBook:
    """The API's stored inbounds and what every other face of the node already listens on."""

    def __init__(self, node):
        self.node = node

    @property
    def store(self):
        return self.node.store

    def stored(self) -> list[dict]:
        raw = self.store.get_setting(API_SETTING, []) or []
        return [e for e in raw if isinstance(e, dict)]

    def configured(self) -> list[InboundSettings]:
        return list(self.node.config.sections.get("inbounds") or [])

    def view(self) -> list[dict]:
        out = []
        raw = self.node.config.raw.get("inbounds") or []
        for i, settings in enumerate(self.configured()):
            entry = dict(raw[i]) if i < len(raw) and isinstance(raw[i], dict) else {}
            out.append(entry_view({**entry, "tag": settings.tag}, settings, "config"))
        for entry in self.stored():
            out.append(entry_view(entry, None, "api"))
        return out

    def get(self, tag: str) -> dict:
        for item in self.view():
            if item["tag"] == tag:
                return item
        raise not_found(f"inbound {tag[:64]!r} not found")

    def index(self, rows: list[dict], tag: str) -> int | None:
        """Where ``tag`` is among the API's entries; 409 for one of node.yaml."""
        if any(s.tag == tag for s in self.configured()):
            raise conflict(f"inbound {tag[:64]!r} is set in node.yaml (inbounds:), not by the API")
        return next((i for i, e in enumerate(rows) if e.get("tag") == tag), None)

    # -- checking ---------------------------------------------------------------------------
    def check(self, entry: dict, others: list[dict], previous: dict | None = None) -> dict:
        """``entry`` complete and runnable beside ``others`` (the API's other entries), or a
        4xx; the entry as it will be stored (tag and listen spelled out).  ``previous``: the
        entry it replaces, whose port is this inbound's own."""
        settings = parse_entry(entry)
        entry = {**entry, "tag": settings.tag, "listen": _listen_text(settings.listen)}
        for path in (settings.cert, settings.key):
            if path and not Path(path).is_file():
                raise bad_request(f"inbound {settings.tag!r}: TLS file {path} does not exist on this node")
        if settings.cert_id:
            from fastpath.tls_ids import store_files
            try:
                store_files(self.node.config.data_dir, settings.cert_id)
            except LookupError:
                raise bad_request(f"inbound {settings.tag!r}: certId {settings.cert_id!r} is no "
                                  "certificate with a key in the TLS store") from None
        own = parse_entry(previous) if previous is not None else None
        self._check_names_and_ports(settings, others, own)
        return entry

    def _taken(self, others: list[dict]) -> tuple[dict, dict]:
        """(tag -> who, (port, proto) -> who) of every other listener of this node."""
        tags: dict[str, str] = {}
        ports: dict[tuple[int, str], str] = {(p.port, p.proto): p.what
                                             for p in node_ports(self.node.config)}
        for s in self.configured():
            tags[s.tag] = "node.yaml"
        for who, entries in (("the native API", others),
                             ("the PasarGuard panel", self.store.get_setting(PANEL_SETTING, []) or [])):
            try:
                parsed = parse_inbounds_config([e for e in entries if isinstance(e, dict)])
            except ConfigError:
                continue
            for s in parsed:
                tags[s.tag] = who
                for key in _ports(s):
                    ports[key] = f"inbound {s.tag} ({who})"
        for row in list_proxy_listeners(self.store):
            tags[row["id"]] = "HY2 SCALE /proxies"
            try:
                port = parse_listen(row.get("listen"))[1]
            except ValueError:
                continue
            for proto in ("tcp", "udp") if row.get("protocol") == "shadowsocks" else ("tcp",):
                ports[(port, proto)] = f"HY2 SCALE proxy {row['id']}"
        return tags, ports

    def _check_names_and_ports(self, settings: InboundSettings, others: list[dict],
                               own: InboundSettings | None) -> None:
        tags, ports = self._taken(others)
        if settings.tag in tags:
            raise conflict(f"tag {settings.tag!r} is used by {tags[settings.tag]}")
        for port, proto in _ports(settings):
            if (port, proto) in ports:
                raise conflict(f"listen {_listen_text(settings.listen)}: {proto.upper()} port "
                               f"{port} is used by {ports[(port, proto)]}")
        held = set(_ports(own)) if own is not None and own.listen == settings.listen else set()
        for port, proto in _ports(settings):
            if (port, proto) in held:
                continue            # this inbound's own listener holds it
            error = probe(Port("listen", settings.listen[0], port, proto))
            if error is not None:
                raise conflict(f"listen {_listen_text(settings.listen)}: {proto.upper()} port "
                               f"{port} is not available: {error.strerror or error}")

    # -- applying ---------------------------------------------------------------------------
    def apply(self, old: list[dict], new: list[dict], tag: str | None) -> None:
        """Store ``new`` if the list still is ``old``, have every worker follow it, and put
        ``old`` back when one could not open inbound ``tag``."""
        if not self.store.swap_setting(API_SETTING, new, old, default=[]):
            raise conflict("the inbound list changed meanwhile; read it again and retry")
        try:
            errors = self.tell_workers()
        except NodeUnavailable:
            self.store.swap_setting(API_SETTING, old, new, default=[])
            raise
        failed = errors.get(tag) if tag is not None else None
        if failed is None and "config" in errors:
            failed = errors["config"]
        if failed is not None:
            self.store.swap_setting(API_SETTING, old, new, default=[])
            self.tell_workers()
            raise conflict(f"inbound {tag!r} could not open on this node: {failed}")

    def tell_workers(self) -> dict:
        """{tag: why} of what some worker could not open.  The supervisor's absence is a 503
        (the change is stored; each worker reads the list when it starts)."""
        answers = self.node.command("broadcast", {"cmd": "inbounds_changed", "args": {"set": "api"},
                                                  "timeout": WORKER_WAIT}, WORKER_WAIT + 2) or []
        errors: dict[str, str] = {}
        for answer in answers if isinstance(answers, list) else []:
            for part in answer if isinstance(answer, list) else [answer]:
                if isinstance(part, dict):
                    if isinstance(part.get("error"), str):
                        errors.setdefault("config", part["error"])
                    errors.update(part.get("errors") or {})
        return errors


def entry_view(entry: dict, settings: InboundSettings | None, managed_by: str) -> dict:
    """An entry as the API shows it: its node.yaml form, credentials hidden (the PSK, the
    path of a TLS key)."""
    out = dict(entry)
    if out.get("psk") is not None:
        out["psk"] = HIDDEN
    if isinstance(out.get("tls"), dict) and out["tls"].get("key") is not None:
        out["tls"] = {**out["tls"], "key": HIDDEN}
    if settings is not None:
        out["listen"] = _listen_text(settings.listen)
    out["managed_by"] = managed_by
    return out


def _body(req) -> dict:
    return v.json_object(req)


class Inbounds:
    """``GET /api/v1/inbounds`` (node.yaml's, then the API's), ``POST`` (a new one)."""

    def __init__(self, book: InboundBook):
        self.book = book

    def on_get(self, req, resp):
        items = self.book.view()
        resp.media = {"inbounds": items, "total": len(items)}

    def on_post(self, req, resp):
        body = _body(req)
        rows = self.book.stored()
        if len(rows) >= MAX_INBOUNDS:
            raise conflict(f"at most {MAX_INBOUNDS} inbounds are made by the API")
        entry = self.book.check(body, rows)
        self.book.apply(rows, rows + [entry], entry["tag"])
        log.info("inbound %s (%s %s) made by the API", entry["tag"], entry["type"], entry["listen"])
        resp.status = falcon.HTTP_201
        resp.media = entry_view(entry, None, "api")


class InboundItem:
    """``GET/PUT/PATCH/DELETE /api/v1/inbounds/{tag}``: PUT replaces the entry, PATCH changes
    the given keys (``null`` removes one); either moves the listener live."""

    def __init__(self, book: InboundBook):
        self.book = book

    def on_get(self, req, resp, tag):
        resp.media = self.book.get(tag)

    def _change(self, req, resp, tag, merge: bool):
        body = _body(req)
        if body.get("tag") not in (None, tag):
            raise bad_request("tag cannot be changed (it is the path's)")
        rows = self.book.stored()
        index = self.book.index(rows, tag)
        if index is None:
            raise not_found(f"inbound {tag[:64]!r} not found")
        entry = {**rows[index], **body} if merge else dict(body)
        entry = {k: value for k, value in entry.items() if value is not None}
        entry["tag"] = tag
        entry = self.book.check(entry, rows[:index] + rows[index + 1:], rows[index])
        new = list(rows)
        new[index] = entry
        self.book.apply(rows, new, tag)
        resp.media = entry_view(entry, None, "api")

    def on_put(self, req, resp, tag):
        self._change(req, resp, tag, merge=False)

    def on_patch(self, req, resp, tag):
        self._change(req, resp, tag, merge=True)

    def on_delete(self, req, resp, tag):
        rows = self.book.stored()
        index = self.book.index(rows, tag)
        if index is None:
            raise not_found(f"inbound {tag[:64]!r} not found")
        self.book.apply(rows, rows[:index] + rows[index + 1:], None)
        resp.status = falcon.HTTP_204


TLS_SCHEMA = {"oneOf": [{"type": "boolean", "description": "true: the node's certificate"},
                        {"type": "object", "additionalProperties": False, "properties": {
                            "cert": {"type": "string", "description": "PEM file on the node"},
                            "key": {"type": "string"},
                            "certId": {"type": "string", "description": "a TLS-store certificate"}}}]}
INBOUND_SCHEMA = {
    "type": "object",
    "description": "One entry of node.yaml's inbounds: section, checked by the same code",
    "additionalProperties": False,
    "required": ["type", "listen"],
    "properties": {
        "type": {"type": "string", "enum": list(TYPES)},
        "listen": {"type": "string", "description": "host:port"},
        "tag": {"type": "string", "description": "the name users' inbounds lists use; "
                                                 "default type-port; cannot change"},
        "auth": {"type": "boolean", "description": "socks/http: false = open proxy (loopback only)"},
        "method": {"type": "string", "description": "shadowsocks: aes-128-gcm, aes-256-gcm, "
                                                    "chacha20-ietf-poly1305, 2022-blake3-aes-128-gcm, "
                                                    "2022-blake3-aes-256-gcm"},
        "psk": {"type": "string", "description": "shadowsocks 2022: the server key (base64)"},
        "fallback": {"type": "string", "description": "trojan: host:port for what is not Trojan"},
        "tls": TLS_SCHEMA,
        "security": {"type": "string", "enum": ["tls", "none"]},
        "transport": {"type": "object", "additionalProperties": False, "properties": {
            "type": {"type": "string", "enum": ["tcp", "ws"]}, "path": {"type": "string"},
            "host": {"type": "string"}}},
        "flow": {"type": "string", "description": "vless: empty (no flow is served)"},
    },
}
# The shown entry is the same object plus managed_by (a copy of the schema, not an allOf:
# Inbound refuses unknown keys, which would refuse managed_by too).
INBOUND_VIEW_SCHEMA = {
    **INBOUND_SCHEMA,
    "required": ["type", "listen", "tag", "managed_by"],
    "properties": {**INBOUND_SCHEMA["properties"],
                   "managed_by": {"type": "string", "enum": ["config", "api"],
                                  "description": "config: node.yaml's, not changed here"}},
    "description": "An inbound as shown: credentials (psk, tls key paths) as ***",
}


def register(app: falcon.App, node):
    book = InboundBook(node)
    app.add_route("/api/v1/inbounds", Inbounds(book))
    app.add_route("/api/v1/inbounds/{tag}", InboundItem(book))
    api = node.openapi
    body = api.schema("Inbound", INBOUND_SCHEMA)
    view = api.schema("InboundView", INBOUND_VIEW_SCHEMA)
    listing = {"type": "object", "properties": {"inbounds": {"type": "array", "items": view},
                                                "total": {"type": "integer"}}}
    changes = {400: "invalid entry (the message names the key): nothing changed",
               409: "tag or port taken, a node.yaml inbound, or a worker could not open it: "
                    "nothing changed", 503: "supervisor unavailable"}
    api.add("GET", "/api/v1/inbounds", "List the proxy inbounds (node.yaml's and the API's)",
            tag="native", response=listing)
    api.add("POST", "/api/v1/inbounds", "Make an inbound; every worker opens it before the answer",
            tag="native", body=body, response=view, status=201, errors=changes)
    tag = [path_param("tag", "the inbound's tag")]
    api.add("GET", "/api/v1/inbounds/{tag}", "One inbound", tag="native", params=tag,
            response=view, errors={404: "unknown tag"})
    api.add("PUT", "/api/v1/inbounds/{tag}", "Replace an inbound made by the API (moved live)",
            tag="native", params=tag, body=body, response=view, errors={404: "unknown tag", **changes})
    api.add("PATCH", "/api/v1/inbounds/{tag}", "Change the given keys of an inbound made by the "
            "API (null removes a key; moved live)", tag="native", params=tag,
            body={"type": "object", "description": "keys of Inbound"}, response=view,
            errors={404: "unknown tag", **changes})
    api.add("DELETE", "/api/v1/inbounds/{tag}", "Close and remove an inbound made by the API",
            tag="native", params=tag, status=204, empty=True,
            errors={404: "unknown tag", 409: "a node.yaml inbound"})
    return bearer_rule(node)
