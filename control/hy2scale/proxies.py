"""``/proxies``: the HY2 SCALE proxy listeners (SOCKS5, HTTP, Shadowsocks), made at run time.

Shapes are the reference's ``ProxyConfig``: ``{id, protocol (socks5 | http | shadowsocks),
listen, enabled, tls_cert?, exit_via?, exit_paths?, exit_mode?}``, plus ``method`` for
Shadowsocks (which the reference keeps apart under ``/ss``); every write answers ``{status:
"ok"}`` as the reference does (with the ``id``, which a create without one is given).

Unlike the reference, which starts the listener before storing it and answers 500 when
anything fails, a change here is checked whole before anything is applied (a clear 4xx
otherwise), stored in one transaction (``fastpath.store.proxy_listeners``), and sent to the
workers (``proxies_changed``): if a worker cannot bind the listener, the previous list is put
back and the answer is 409 with the worker's reason.  The inbounds of the node config are
listed too (``managed_by: "config"``) and cannot be changed here.

Users log in with their HY2 SCALE credentials (SOCKS5/HTTP: username and password;
Shadowsocks: the password is the key's), are counted on the same counters as their Hysteria 2
traffic, and leave through their exit (or the listener's ``exit_via`` / ``exit_paths`` /
``exit_mode``: multi-hop paths ``b/c`` and the quality and aggregate modes, checked as a
user's exit is and followed by the same egress, ``fastpath.mesh.egress``), never around it.
"""
from __future__ import annotations

import logging
import re
import secrets

from fastpath.control import validation as v
from fastpath.control.errors import bad_request, conflict, not_found
from fastpath.control.hy2scale.clients import ClientBook, self_names
from fastpath.control.hy2scale.face import read_setting
from fastpath.config.fields import ConfigError
from fastpath.inbounds.config import parse_inbounds_config
from fastpath.inbounds.panel_inbounds import API_SETTING
from fastpath.inbounds.live import PROTOCOL_TYPES, TLS_PROTOCOLS, parse_listen, proxy_settings
from fastpath.inbounds.shadowsocks_2022 import METHODS_2022
from fastpath.inbounds.shadowsocks_aead import METHODS
from fastpath.supervisor.port_check import Port, node_ports
from fastpath.supervisor.port_check import _probe as probe
from fastpath.store.exit_paths import ExitRefused, check_exit
from fastpath.store.ledger import CLIENTS_KEY
from fastpath.store.proxy_listeners import list_proxy_listeners, replace_proxy_listeners

log = logging.getLogger("fastpath.control.hy2scale")

PROXY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
FIELDS = ("id", "protocol", "listen", "enabled", "tls_cert", "method", "exit_via", "exit_paths",
          "exit_mode")
CONFIG_NAMES = {"socks": "socks5", "http": "http", "shadowsocks": "shadowsocks", "trojan": "trojan"}
SS_ALL = (*METHODS, *METHODS_2022)
WORKER_WAIT = 8.0


def _listen_text(listen) -> str:
    host, port = listen
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _text(body: dict, name: str, max_len: int = 128):
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise bad_request(f"{name} must be text of at most {max_len} characters")
    return value


class ProxyBook:
    """The stored listeners and the checks a change passes before it is applied."""

    def __init__(self, face, clients: ClientBook):
        self.face = face
        self.clients = clients

    # -- reading ----------------------------------------------------------------------------
    def stored(self) -> list[dict]:
        return list_proxy_listeners(self.face.store)

    def configured(self) -> list:
        return list(self.face.node.config.sections.get("inbounds") or [])

    def view(self) -> list[dict]:
        out = []
        for inbound in self.configured():
            out.append({"id": inbound.tag, "protocol": CONFIG_NAMES.get(inbound.type, inbound.type),
                        "listen": _listen_text(inbound.listen), "enabled": True, "tls_cert": "",
                        "method": inbound.method or "", "exit_via": inbound.exit_via or "",
                        "exit_paths": [inbound.exit_via] if inbound.exit_via else [], "exit_mode": "",
                        "auth": inbound.auth, "managed_by": "config"})
        for row in self.stored():
            out.append({**public(row), "managed_by": "api"})
        return out

    def get(self, pid: str) -> dict:
        for row in self.view():
            if row["id"] == pid:
                return row
        raise not_found(f"proxy {pid[:64]!r} not found")

    # -- checking ---------------------------------------------------------------------------
    def check(self, row: dict, others: list[dict]) -> dict:
        """``row`` complete and runnable, or 4xx; the row as it will be stored."""
        if not PROXY_ID.match(row["id"]):
            raise bad_request("id must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        if row["protocol"] not in PROTOCOL_TYPES:
            raise bad_request(f"protocol must be one of {', '.join(PROTOCOL_TYPES)}")
        try:
            host, port = parse_listen(row["listen"])
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        row["listen"] = _listen_text((host, port))
        if row["protocol"] == "shadowsocks":
            if row["method"] not in SS_ALL:
                raise bad_request(f"method must be one of {', '.join(SS_ALL)}")
        elif row["method"]:
            raise bad_request(f"method is for shadowsocks listeners, not {row['protocol']}")
        if row["tls_cert"] and row["protocol"] not in TLS_PROTOCOLS:
            raise bad_request(f"tls_cert: a {row['protocol']} listener has no TLS wrapping")
        self._check_exit(row)
        try:
            proxy_settings(row, self.face.node.config.data_dir)
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        self._check_port(row, (host, port), others)
        return row

    def _check_exit(self, row: dict) -> None:
        """The listener's exit as a user's is checked (``fastpath.store.exit_paths``): paths
        that start at an enabled client, revisit no node, several with quality or aggregate;
        a mode without a path is refused rather than stored to mean nothing."""
        if row["exit_mode"] and not row["exit_paths"]:
            raise bad_request(f"exit_mode {row['exit_mode'][:16]!r} needs exit_paths (or exit_via)")
        with self.face.ledger.read() as db:
            clients = read_setting(db, CLIENTS_KEY, []) or []
            own = self_names(db, self.face)
        try:
            check_exit(row, clients, own)
        except ExitRefused as exc:
            raise bad_request(f"exit_via / exit_paths: {exc.message}") from None

    def _check_port(self, row: dict, listen: tuple[str, int], others: list[dict]) -> None:
        """No two listeners of this node on one port of the same transport, and a new port
        free on the machine, before the workers are asked to bind it."""
        host, port = listen
        protos = ("tcp", "udp") if row["protocol"] == "shadowsocks" else ("tcp",)
        taken = {(p.port, p.proto): p.what for p in node_ports(self.face.node.config)}
        for inbound in api_inbounds(self.face.store):
            for proto in ("tcp", "udp") if inbound.type == "shadowsocks" else ("tcp",):
                taken[(inbound.listen[1], proto)] = f"inbound {inbound.tag} (native API)"
        for other in others:
            if other["id"] == row["id"]:
                continue
            try:
                other_port = parse_listen(other["listen"])[1]
            except ValueError:
                continue
            for proto in ("tcp", "udp") if other.get("protocol") == "shadowsocks" else ("tcp",):
                taken[(other_port, proto)] = f"proxy {other['id']}"
        for proto in protos:
            if (port, proto) in taken:
                raise conflict(f"listen {row['listen']}: {proto.upper()} port {port} is used by "
                               f"{taken[(port, proto)]}")
        running = {parse_listen(o["listen"]) for o in others if o["id"] == row["id"] and o.get("enabled")}
        if row["enabled"] and (host, port) not in running:
            for proto in protos:
                error = probe(Port("listen", host, port, proto))
                if error is not None:
                    raise conflict(f"listen {row['listen']}: {proto.upper()} port {port} is not "
                                   f"available: {error.strerror or error}")


def api_inbounds(store) -> list:
    """The inbounds made by the native API (``/api/v1/inbounds``), whose ports are taken."""
    try:
        return parse_inbounds_config(store.get_setting(API_SETTING, []) or [])
    except ConfigError:
        return []


def public(row: dict) -> dict:
    out = {k: row.get(k) for k in FIELDS}
    out["enabled"] = bool(out["enabled"])
    out["exit_paths"] = list(out["exit_paths"] or [])
    for k in ("tls_cert", "method", "exit_via", "exit_mode"):
        out[k] = out[k] or ""
    return out


def row_from_body(body: dict, base: dict | None, pid: str | None) -> dict:
    """The row a POST (``base`` None) or PUT body makes: given fields replace ``base``'s."""
    row = dict(base or {"protocol": "socks5", "enabled": False, "tls_cert": "", "method": "",
                        "exit_via": "", "exit_paths": [], "exit_mode": ""})
    given_id = _text(body, "id", 64)
    if pid is not None:
        if given_id not in (None, "", pid):
            raise bad_request("id cannot be changed (it is the path's)")
        row["id"] = pid
    else:
        row["id"] = given_id or secrets.token_hex(4)
    for name, max_len in (("protocol", 16), ("listen", 300), ("tls_cert", 64), ("method", 40),
                          ("exit_via", 128), ("exit_mode", 16)):
        value = _text(body, name, max_len)
        if value is not None:
            row[name] = value
    if row.get("protocol") == "":
        row["protocol"] = "socks5"                  # as the reference defaults it
    if "enabled" in body and body["enabled"] is not None:
        if not isinstance(body["enabled"], bool):
            raise bad_request("enabled must be true or false")
        row["enabled"] = body["enabled"]
    if body.get("exit_paths") is not None:
        paths = body["exit_paths"]
        if not isinstance(paths, list) or not all(isinstance(p, str) and 0 < len(p) <= 128 for p in paths) \
                or len(paths) > 8:
            raise bad_request("exit_paths must be a list of at most 8 peer names")
        row["exit_paths"] = list(paths)
    elif "exit_via" in body and body["exit_via"] is not None:
        # A new exit_via alone replaces the paths (it is the one path now, or none).
        row["exit_paths"] = [row["exit_via"]] if row["exit_via"] else []
    # As the reference: exit_paths[0] is the exit; a lone exit_via is the one path.
    if row["exit_paths"]:
        row["exit_via"] = row["exit_paths"][0]
    elif row["exit_via"]:
        row["exit_paths"] = [row["exit_via"]]
    if not row.get("listen"):
        raise bad_request("listen required (host:port)")
    return row


class Proxies:
    """``GET /proxies`` (config inbounds, then the stored ones), ``POST /proxies``."""

    def __init__(self, book: ProxyBook):
        self.book = book

    def on_get(self, req, resp):
        resp.media = self.book.view()

    def on_post(self, req, resp):
        body = v.json_object(req)
        rows = self.book.stored()
        row = row_from_body(body, None, None)
        if any(r["id"] == row["id"] for r in self.book.view()):
            raise conflict(f"proxy {row['id']!r} exists (PUT /proxies/{row['id']} changes it)")
        row = self.book.check(row, rows)
        apply(self.book, rows, rows + [row], row["id"])
        resp.status = "200 OK"
        resp.media = {"status": "ok", "id": row["id"]}


class ProxyItem:
    """``GET/PUT/DELETE /proxies/{id}``; PUT changes the given fields (creating the listener
    if there is none, as the reference's update does)."""

    def __init__(self, book: ProxyBook):
        self.book = book

    def _stored_index(self, rows: list[dict], pid: str) -> int | None:
        if any(i.tag == pid for i in self.book.configured()):
            raise conflict(f"proxy {pid[:64]!r} is set in the node config (inbounds:), not here")
        return next((i for i, r in enumerate(rows) if r["id"] == pid), None)

    def on_get(self, req, resp, proxy_id):
        resp.media = self.book.get(proxy_id)

    def on_put(self, req, resp, proxy_id):
        body = v.json_object(req)
        rows = self.book.stored()
        index = self._stored_index(rows, proxy_id)
        row = row_from_body(body, rows[index] if index is not None else None, proxy_id)
        put_row(self.book, rows, index, row)
        resp.media = {"status": "ok", "id": proxy_id}

    def on_delete(self, req, resp, proxy_id):
        rows = self.book.stored()
        index = self._stored_index(rows, proxy_id)
        if index is None:
            raise not_found(f"proxy {proxy_id[:64]!r} not found")
        apply(self.book, rows, rows[:index] + rows[index + 1:], None)
        resp.media = {"status": "ok"}


def put_row(book: ProxyBook, rows: list[dict], index: int | None, row: dict) -> None:
    """``row`` checked against the stored ``rows``, in place of ``rows[index]`` (appended when
    ``index`` is None), stored and applied as ``apply`` does."""
    row = book.check(row, rows)
    new = list(rows)
    if index is None:
        new.append(row)
    else:
        new[index] = row
    apply(book, rows, new, row["id"])


def apply(book: ProxyBook, old: list[dict], new: list[dict], pid: str | None) -> None:
    """Store ``new`` (if the list is still ``old``), have the workers apply it, and put ``old``
    back when a worker cannot run listener ``pid``."""
    if not replace_proxy_listeners(book.face.store, new, expect=old):
        raise conflict("the proxy list changed meanwhile; read it again and retry")
    failed = tell_workers(book)
    if pid is not None and pid in failed:
        replace_proxy_listeners(book.face.store, old, expect=new)
        tell_workers(book)
        raise conflict(f"proxy {pid}: {failed[pid]}")


def tell_workers(book: ProxyBook) -> dict:
    """The listeners some worker could not start: {id: why}.  A supervisor that cannot be
    reached only delays the change until the workers' next reread of the row."""
    try:
        answers = book.face.tell_workers("proxies_changed", {})
    except Exception as exc:        # noqa: BLE001 - any failure here is only a delay
        log.warning("hy2scale: proxies_changed not delivered: %s", exc)
        return {}
    failed: dict[str, str] = {}
    for answer in answers if isinstance(answers, list) else []:
        if isinstance(answer, dict):
            failed.update(answer.get("failed") or {})
    return failed


SS_TAB_ID = "ss"


class ShadowsocksTab:
    """``GET/PUT /ss``: the reference UI's Shadowsocks tab (``{listen, enabled, method}``).

    A Shadowsocks inbound of the node config is shown and cannot be changed here (501 unless
    the PUT matches it, as before).  Otherwise the tab is the stored proxy listener ``ss``:
    a PUT changes the given fields and starts, moves or stops it live like ``PUT
    /proxies/ss``; with none stored, GET answers the reference's empty form."""

    def __init__(self, book: ProxyBook, configured):
        self.book = book
        self.configured = configured        # fastpath.control.hy2scale.extras.Shadowsocks

    def _config_inbound(self) -> bool:
        return any(i.type == "shadowsocks" for i in self.book.configured())

    def on_get(self, req, resp):
        if self._config_inbound():
            self.configured.on_get(req, resp)
            return
        row = next((r for r in self.book.stored() if r["id"] == SS_TAB_ID), None)
        if row is None:
            resp.media = {"listen": "", "enabled": False, "method": "aes-256-gcm", "capable": True,
                          "managed_by": "api"}
            return
        resp.media = {"listen": row["listen"], "enabled": bool(row.get("enabled")),
                      "method": row.get("method") or "", "exit_via": row.get("exit_via") or "",
                      "exit_paths": list(row.get("exit_paths") or []),
                      "exit_mode": row.get("exit_mode") or "", "capable": True, "managed_by": "api"}

    def on_put(self, req, resp):
        if self._config_inbound():
            self.configured.on_put(req, resp)
            return
        body = v.json_object(req)
        rows = self.book.stored()
        index = next((i for i, r in enumerate(rows) if r["id"] == SS_TAB_ID), None)
        base = rows[index] if index is not None else None
        fields = {k: body[k] for k in ("listen", "enabled", "method", "exit_via", "exit_paths",
                                       "exit_mode") if k in body}
        if base is None and not fields.get("method"):
            fields["method"] = "aes-256-gcm"            # the reference's default
        row = row_from_body({**fields, "protocol": "shadowsocks"}, base, SS_TAB_ID)
        put_row(self.book, rows, index, row)
        resp.media = {"status": "ok"}
