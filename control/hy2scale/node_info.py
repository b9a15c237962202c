"""Node identity and settings, build facts, UI settings and the port check.

``PUT /node`` changes only the fields it is given and keeps them in the store (name, exit_node,
the server block...).  The Hysteria 2 listener itself is set by the node's config file: the
answer shows what is stored under ``server`` and what runs under ``server_effective``, so a
stored change that needs a config edit and restart is visible, not hidden.
"""
from __future__ import annotations

import hashlib
import platform
import secrets
import socket
from importlib import metadata


from fastpath.control import validation as v
from fastpath.control.errors import bad_request
from fastpath.control.hy2scale.face import (
    NODE_KEY,
    UI_KEY,
    ScaleFace,
    read_setting,
    write_setting,
)
from fastpath.control.hy2scale import ui_settings
from fastpath.control.route_guard import PUBLIC
from fastpath.control.node_model import NodeUnavailable
from fastpath import __version__
from fastpath.config.fields import parse_listen
from fastpath.shm import scan_totals

NODE_FLAGS = ("exit_node", "hy2_user_auth", "compat", "limited")
SERVER_FIELDS = ("listen", "password", "tls_cert", "tls_key")
PYTHON_DEPS = ("aioquic", "falcon", "gunicorn", "msgpack", "cryptography", "uvloop", "aiohttp", "Cython")
NATIVE_MODULES = ("fastpath.shm.counter_table", "fastpath.views.traffic_view", "fastpath.views.media_view")
MAX_PORTS = 256


def _listen_text(listen) -> str:
    host, port = listen
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class NodeSettings:
    def __init__(self, face: ScaleFace):
        self.face = face
        cfg = face.node.config
        hy = cfg.sections.get("hysteria")
        cert, key = hy.tls_files(cfg.data_dir) if hy is not None else ("", "")
        self.effective = {"listen": _listen_text(hy.listen) if hy is not None else "",
                          "tls_cert": cert, "tls_key": key}

    def stored(self) -> dict:
        rec = self.face.setting(NODE_KEY)
        if rec is None or "node_id" not in rec:
            with self.face.ledger.write() as db:
                rec = read_setting(db, NODE_KEY) or {}
                if "node_id" not in rec:
                    rec["node_id"] = secrets.token_hex(4)
                    write_setting(db, NODE_KEY, rec)
        return rec

    def view(self) -> dict:
        rec = self.stored()
        server = {"listen": self.effective["listen"], "password": "",
                  "tls_cert": self.effective["tls_cert"], "tls_key": self.effective["tls_key"]}
        server.update(rec.get("server") or {})
        tx, rx = traffic_totals(self.face)
        return {
            "node_id": rec["node_id"],
            "name": rec.get("name") or self.face.node.config.name,
            "exit_node": rec.get("exit_node", True),
            "hy2_user_auth": rec.get("hy2_user_auth", True),
            "compat": rec.get("compat", False),
            # The reference's "Limited" (no kernel TUN/VPN capability): true here, this node runs
            # no L2TP, IKEv2, WireGuard or TUN; the UI then shows those tabs as not available.
            "limited": rec.get("limited", True),
            "server": server,
            "server_effective": dict(self.effective),
            "version": __version__,
            "tx_bytes": tx,
            "rx_bytes": rx,
        }

    def parse(self, body: dict) -> dict:
        allowed = {"name", "server", "node_id", "version", "server_effective", "tx_bytes", "rx_bytes",
                   *NODE_FLAGS}
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise bad_request(f"unknown field {unknown[0]!r}")
        out: dict = {}
        if "name" in body:
            out["name"] = v.string(body, "name", max_len=64)
        for flag in NODE_FLAGS:
            if flag in body:
                out[flag] = v.boolean(body, flag)
        if "server" in body:
            server = body["server"]
            if not isinstance(server, dict):
                raise bad_request("server must be an object")
            bad = sorted(set(server) - set(SERVER_FIELDS))
            if bad:
                raise bad_request(f"unknown field server.{bad[0]}")
            out["server"] = {}
            for name in SERVER_FIELDS:
                if name in server:
                    value = server[name]
                    if not isinstance(value, str) or len(value) > 1024:
                        raise bad_request(f"server.{name} must be a string")
                    if name == "listen" and value:
                        try:
                            parse_listen(value)
                        except ValueError as exc:
                            raise bad_request(f"server.listen: {exc}") from None
                    out["server"][name] = value
        return out

    def update(self, changes: dict) -> None:
        self.stored()
        with self.face.ledger.write() as db:
            rec = read_setting(db, NODE_KEY) or {}
            server = dict(rec.get("server") or {})
            server.update(changes.pop("server", {}))
            rec.update(changes)
            if server:
                rec["server"] = server
            write_setting(db, NODE_KEY, rec)


def traffic_totals(face: ScaleFace) -> tuple[int, int]:
    """Every byte the node counted: carried from earlier segments plus the live segment."""
    with face.ledger.read() as db:
        row = db.carried_sum()
    try:
        _used, ltx, lrx = scan_totals(face.node.table)
    except NodeUnavailable:
        ltx = lrx = 0
    return row[0] + ltx, row[1] + lrx


class Node:
    def __init__(self, settings: NodeSettings):
        self.settings = settings

    def on_get(self, req, resp):
        resp.media = self.settings.view()

    def on_put(self, req, resp):
        changes = self.settings.parse(v.json_object(req))
        self.settings.update(changes)
        resp.media = self.settings.view()


class NodeTraffic:
    def __init__(self, face: ScaleFace):
        self.face = face

    def on_get(self, req, resp):
        tx, rx = traffic_totals(self.face)
        resp.media = {"tx_bytes": tx, "rx_bytes": rx}


def build_id() -> str:
    """The reference hashes its embedded UI: here the dashboard build served at ``/scale/``
    (``control/dashboard.py``), so the page and this route name the same build.  Without
    that build the id names the node's (version and the face's code)."""
    try:
        from fastpath.control.dashboard import Site
        return Site().build_id
    except (ImportError, OSError, KeyError, ValueError):
        pass
    h = hashlib.sha256(f"fastpath {__version__}".encode())
    from pathlib import Path

    import fastpath.control.hy2scale as pkg
    for path in sorted(Path(pkg.__file__).parent.glob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()


class BuildId:
    auth_rule = PUBLIC      # the UI reads it before login

    def __init__(self):
        self.value = build_id()

    def on_get(self, req, resp):
        resp.media = {"build_id": self.value}


class BuildInfo:
    def on_get(self, req, resp):
        deps = []
        for name in PYTHON_DEPS:
            try:
                deps.append({"name": name, "version": metadata.version(name)})
            except metadata.PackageNotFoundError:
                continue
        natives = []
        for mod in NATIVE_MODULES:
            try:
                natives.append({"name": mod, "file": __import__(mod, fromlist=["x"]).__file__.rsplit("/", 1)[-1]})
            except ImportError:
                continue
        resp.media = {"version": __version__, "license": "see the project's repository",
                      "repository": "fastpath", "python": platform.python_version(),
                      "go_deps": [], "python_deps": deps, "natives": natives}


class UiSettings:
    """``GET/PUT /settings/ui``: the reference's document (``ui_settings.py`` says what each
    key does here)."""

    def __init__(self, face: ScaleFace):
        self.face = face

    def on_get(self, req, resp):
        resp.media = self.face.ui_settings()

    def on_put(self, req, resp):
        body = v.json_object(req)
        changes, applied, not_applicable, ignored = ui_settings.parse_put(body, self.face.fixed_ui())
        if changes:
            with self.face.ledger.write() as db:
                rec = read_setting(db, UI_KEY) or {}
                rec.update(changes)
                write_setting(db, UI_KEY, rec)
        doc = self.face.ui_settings()
        note = "applied live" if not not_applicable else (
            "some settings do not apply on this node: see not_applicable")
        doc.update({"status": "ok", "note": note, "applied": applied,
                    "not_applicable": not_applicable, "ignored": ignored})
        resp.media = doc


PROTOS = ("tcp", "udp")


def port_free(port: int, protos=PROTOS) -> bool:
    """Whether this process could bind ``port`` on every address for each of ``protos``."""
    for proto in protos:
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, kind) as s:
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                return False
    return True


def _port_entry(item, i: int) -> dict:
    """One ``{port, proto, desc}`` (the reference's shape) or a bare port number (both
    protocols, this face's older shape)."""
    if isinstance(item, int) and not isinstance(item, bool):
        item = {"port": item, "proto": "", "desc": ""}
    if not isinstance(item, dict) or set(item) - {"port", "proto", "desc"}:
        raise bad_request(f"ports[{i}] must be a port number or {{port, proto, desc}}")
    port = item.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise bad_request(f"ports[{i}].port must be a port number (1-65535)")
    proto = item.get("proto") or ""
    if proto not in ("", *PROTOS):
        raise bad_request(f"ports[{i}].proto must be tcp or udp")
    desc = item.get("desc") or ""
    if not isinstance(desc, str) or len(desc) > 256:
        raise bad_request(f"ports[{i}].desc must be text of at most 256 characters")
    return {"port": port, "proto": proto, "desc": desc}


class CheckPorts:
    """``POST /check-ports``: the reference's handler takes a bare array of ``{port, proto,
    desc}`` while its UI sends ``{ports: [...]}``; both are taken (and bare numbers, which
    check TCP and UDP).  The answer has the reference's ``conflicts`` (the entries in use) and
    ``results`` (``{"port": free}``)."""

    def on_post(self, req, resp):
        body = v.request_body(req)
        if isinstance(body, dict):
            if set(body) - {"ports"} or "ports" not in body:
                raise bad_request("the body is [{port, proto, desc}, ...] or {\"ports\": [...]}")
            body = body["ports"]
        if not isinstance(body, list) or len(body) > MAX_PORTS:
            raise bad_request(f"ports must be a list of at most {MAX_PORTS} entries")
        entries = [_port_entry(item, i) for i, item in enumerate(body)]
        conflicts, results = [], {}
        for e in entries:
            free = port_free(e["port"], (e["proto"],) if e["proto"] else PROTOS)
            results[str(e["port"])] = results.get(str(e["port"]), True) and free
            if not free:
                conflicts.append(e)
        resp.media = {"conflicts": conflicts, "results": results}
