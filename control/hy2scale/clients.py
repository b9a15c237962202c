"""Clients: the outbound peers this node dials (other Hysteria 2 nodes a user's traffic may
leave through).

Kept as one settings row, ``hy2scale.clients`` (a list, in creation order), which the workers
read at start and again when the face broadcasts ``peers_changed``
(``fastpath.hy2.client.exit_peers``).  Entry fields: ``name`` (a short token), ``addr`` (host:port),
``addrs`` (more host:port tried in order when ``addr`` fails), ``password`` (the Hysteria 2
auth string the peer expects), ``sni``, ``insecure``, ``ca`` (the CA certificate(s) that sign
the peer's certificate, as PEM text; a file path only inside ``scale.caDir``),
``max_tx`` / ``max_rx`` (bytes per second, as the reference: its UI sends Mbit/s x 125000; 0 =
none), ``disabled``, and the reference's tuning fields (see ``TUNING``).

Units in the row: the workers (``fastpath.hy2.client.exit_peers``) read ``max_tx`` / ``max_rx`` of the
row as whole Mbit/s, so the row keeps that contract and, when the bytes/s the API was given
are not whole Mbit/s, holds them exactly in ``max_tx_bps`` / ``max_rx_bps``; rows and backups
written before this change (Mbit/s only) read back as Mbit/s x 125000.

A listing masks passwords (``ab******``); a PUT that sends the masked text back keeps the
stored password.  A client that a user exits through cannot be deleted or renamed (409);
disabling it is allowed: those users' streams then fail, they never leave directly.
"""
from __future__ import annotations

import logging
import os
import re

from fastpath.control import validation as v
from fastpath.control.errors import bad_request, conflict, not_found
from fastpath.control.hy2scale.face import NODE_KEY, ScaleFace, read_setting, write_setting
from fastpath.store.ledger import CLIENTS_KEY, first_hops
from fastpath.mesh.paths import split_address
from fastpath.mesh.egress import RULES_KEY
from fastpath.store.proxy_listeners import PROXIES_KEY

log = logging.getLogger("fastpath.control.hy2scale")

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
FIELDS = ("name", "addr", "addrs", "password", "sni", "insecure", "ca", "max_tx", "max_rx", "disabled")
# The reference's client tuning fields, stored and returned as given.  None is applied yet:
# the workers build their Hysteria 2 client from the row in ``fastpath.hy2.client.exit_peers``
# (outside the face), which reads only the fields above.  The windows and ``fast_open`` map
# onto our client's ``QuicSettings`` windows and ``ClientSettings.fast_open`` and take effect
# once ``exit_peers.client_settings`` passes them on; ``bbr_profile`` has no counterpart
# (aioquic's congestion control is not tunable that way; a bandwidth in max_tx/max_rx selects
# Brutal as in the reference); ``conn_mode`` (the reference UI's quality/aggregate choice over
# a client's addresses) has none either: our peer uses ``addr`` then ``addrs`` in order.
WINDOWS = ("init_stream_window", "max_stream_window", "init_conn_window", "max_conn_window")
CHOICES = {"bbr_profile": ("", "standard", "conservative", "aggressive"),
           "conn_mode": ("", "quality", "aggregate")}
TUNING = (*WINDOWS, "fast_open", *CHOICES)
NOT_APPLIED = TUNING
READ_ONLY = {"connected", "latency_ms"}
MAX_ADDRS = 8
MAX_CLIENTS = 256
MBIT = 125_000                       # bytes/s in one Mbit/s
MAX_MBPS = 100_000
MAX_BPS = MAX_MBPS * MBIT
MAX_WINDOW = 1 << 30
MASK = "******"
CA_MAX = 64 * 1024


def mask(password: str) -> str:
    """Enough of a password to tell two apart, never the whole of it."""
    return (password[:2] + MASK) if len(password) > 4 else (MASK if password else "")


def rate_bytes(entry: dict, name: str) -> int:
    """``max_tx`` / ``max_rx`` of a row in bytes/s (exact if the API stored it, else from the
    workers' Mbit/s)."""
    exact = entry.get(name + "_bps")
    if isinstance(exact, int) and not isinstance(exact, bool):
        return exact
    return int(entry.get(name) or 0) * MBIT


def worker_mbps(bps: int) -> int:
    """The whole Mbit/s the workers announce for ``bps``: the nearest one, at least 1 for any
    non-zero rate (0 would mean "no limit").  The UI only sends whole Mbit/s, which is exact."""
    return 0 if bps <= 0 else max(1, round(bps / MBIT))


def all_addrs(entry: dict) -> list[str]:
    """Every address of a client, ``addr`` first (the reference's ``addrs``)."""
    out = []
    for a in [entry.get("addr")] + list(entry.get("addrs") or []):
        if isinstance(a, str) and a and a not in out:
            out.append(a)
    return out


def row_as_body(row):
    """A stored row (a backup's ``clients``) as an API body: its rates in bytes/s."""
    if not isinstance(row, dict):
        return row
    body = {k: val for k, val in row.items() if k not in ("max_tx_bps", "max_rx_bps")}
    for name in ("max_tx", "max_rx"):
        if name in row or name + "_bps" in row:
            exact = row.get(name + "_bps")
            if exact is not None:
                body[name] = exact
            elif isinstance(row.get(name), int) and not isinstance(row.get(name), bool):
                body[name] = row[name] * MBIT
    return body


def public_view(entry: dict) -> dict:
    out = {k: entry.get(k) for k in FIELDS}
    out["password"] = mask(entry.get("password") or "")
    out["disabled"] = bool(entry.get("disabled"))
    out["addrs"] = all_addrs(entry)
    out["max_tx"] = rate_bytes(entry, "max_tx")
    out["max_rx"] = rate_bytes(entry, "max_rx")
    for name in WINDOWS:
        out[name] = int(entry.get(name) or 0)
    out["fast_open"] = bool(entry.get("fast_open"))
    for name in CHOICES:
        out[name] = entry.get(name) or ""
    out["not_applied"] = list(NOT_APPLIED)
    return out


def _address(value, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 261 or any(c.isspace() for c in value):
        raise bad_request(f"{where} must be host:port")
    try:
        _host, port = split_address(value)
    except ValueError:
        raise bad_request(f"{where} must be host:port, not {value!r}") from None
    if not 1 <= port <= 65535:
        raise bad_request(f"{where}: port must be 1-65535")
    return value


def _short_text(body: dict, name: str, max_len: int) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > max_len or any(not c.isprintable() for c in value):
        raise bad_request(f"{name} must be text of at most {max_len} characters")
    return value


def parse_ca(value, ca_dir: str | None) -> str:
    """A client's ``ca``: PEM text that holds at least one certificate, or (only when
    ``scale.caDir`` is set) a file inside that directory, stored as its resolved path.

    A path anywhere on the node was a file-existence oracle (``no such file`` or not), so
    outside the directory every path gets the same answer whether or not it exists."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > CA_MAX:
        raise bad_request(f"ca must be PEM text of at most {CA_MAX} characters")
    if value.lstrip().startswith("-----BEGIN"):
        from cryptography import x509
        try:
            certs = x509.load_pem_x509_certificates(value.encode())
        except ValueError:
            raise bad_request("ca: the PEM text holds no readable certificate") from None
        if not certs:
            raise bad_request("ca: no certificate in the PEM text")
        return value
    if ca_dir is None:
        raise bad_request("ca must be the CA certificate as PEM text (-----BEGIN CERTIFICATE-----); "
                          "a file path is accepted only inside scale.caDir, which is not set")
    if any(not c.isprintable() for c in value):
        raise bad_request("ca: a path must be printable text")
    real = os.path.realpath(os.path.join(ca_dir, value))
    if os.path.commonpath([real, ca_dir]) != ca_dir or real == ca_dir:
        raise bad_request("ca: a path must name a file inside scale.caDir")
    if not os.path.isfile(real):
        raise bad_request(f"ca: no such file in scale.caDir: {os.path.relpath(real, ca_dir)!r}")
    try:
        from cryptography import x509
        with open(real, "rb") as fh:
            x509.load_pem_x509_certificates(fh.read(CA_MAX + 1))
    except (OSError, ValueError):
        raise bad_request(f"ca: {os.path.relpath(real, ca_dir)!r} is not a PEM certificate "
                          "file") from None
    return real


def parse_client(body, old: dict | None = None, ca_dir: str | None = None) -> dict:
    """A whole client entry from a create body, or ``old`` changed by an update body; 400 on
    any fault, before anything is stored."""
    if not isinstance(body, dict):
        raise bad_request("a client is a JSON object")
    unknown = sorted(set(body) - set(FIELDS) - set(TUNING) - READ_ONLY - {"not_applied"})
    if unknown:
        raise bad_request(f"unknown field {unknown[0]!r}")
    entry = dict(old or {"addrs": [], "password": "", "sni": "", "insecure": False, "ca": "",
                         "max_tx": 0, "max_rx": 0, "disabled": False})
    if "name" in body or old is None:
        name = body.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise bad_request("name must be 1-32 letters, digits, '.', '_' or '-' (no '/'), starting "
                              "with a letter or digit")
        entry["name"] = name
    addrs = body.get("addrs")
    if addrs is not None:
        if not isinstance(addrs, list) or len(addrs) > MAX_ADDRS:
            raise bad_request(f"addrs must be a list of at most {MAX_ADDRS} host:port")
        addrs = [_address(a, f"addrs[{i}]") for i, a in enumerate(addrs)]
    if "addr" in body or old is None:
        if body.get("addr") in (None, "") and addrs:
            entry["addr"] = addrs[0]        # the reference: addr is addrs[0]
        else:
            entry["addr"] = _address(body.get("addr"), "addr")
    if addrs is not None:
        # Stored as the addresses after addr (the workers try addr, then these).
        entry["addrs"] = [a for a in dict.fromkeys(addrs) if a != entry["addr"]]
    if "password" in body:
        password = _short_text(body, "password", 256)
        if old is None or password != mask(old.get("password") or ""):
            entry["password"] = password
    if "sni" in body:
        entry["sni"] = _short_text(body, "sni", 253)
    if "ca" in body:
        entry["ca"] = parse_ca(body["ca"], ca_dir)
    if "insecure" in body:
        entry["insecure"] = v.boolean(body, "insecure")
    if "disabled" in body:
        entry["disabled"] = v.boolean(body, "disabled")
    for name in ("max_tx", "max_rx"):
        if name in body and body[name] is not None:
            bps = v.integer(body, name, minimum=0, maximum=MAX_BPS)
            entry[name] = worker_mbps(bps)
            if bps == entry[name] * MBIT:      # whole Mbit/s: the row says it all
                entry.pop(name + "_bps", None)
            else:
                entry[name + "_bps"] = bps
    for name in WINDOWS:
        if body.get(name) is not None:
            entry[name] = v.integer(body, name, minimum=0, maximum=MAX_WINDOW)
    if body.get("fast_open") is not None:
        entry["fast_open"] = v.boolean(body, "fast_open")
    for name, allowed in CHOICES.items():
        if body.get(name) is not None:
            if body[name] not in allowed:
                raise bad_request(f"{name} must be one of {', '.join(repr(a) for a in allowed)}")
            entry[name] = body[name]
    return entry


def exit_users(db, name: str) -> list[str]:
    """Usernames of the scale users (and ids of the rules and proxy listeners, as ``rule
    <id>`` / ``proxy <id>``) with an exit path that starts at client ``name``."""
    out = db.usernames_exiting_via("hy2scale", name)
    for kind, key in (("rule", RULES_KEY), ("proxy", PROXIES_KEY)):
        for row in read_setting(db, key, []) or []:
            if isinstance(row, dict) and name in first_hops(row.get("exit_paths"), row.get("exit_via")):
                out.append(f"{kind} {row.get('id')}")
    return out[:6]


class ClientBook:
    def __init__(self, face: ScaleFace):
        self.face = face

    def list(self) -> list[dict]:
        return [c for c in (self.face.setting(CLIENTS_KEY, []) or []) if isinstance(c, dict)]

    def get(self, name: str) -> dict:
        entry = next((c for c in self.list() if c.get("name") == name), None)
        if entry is None:
            raise not_found(f"client {name!r} not found")
        return entry

    def _change(self, name: str | None, body, *, delete: bool = False) -> dict | None:
        """Create (``name`` None), update or delete one entry in one transaction."""
        with self.face.ledger.write() as db:
            clients = [c for c in (read_setting(db, CLIENTS_KEY, []) or []) if isinstance(c, dict)]
            index = next((i for i, c in enumerate(clients) if c.get("name") == name), None)
            if name is not None and index is None:
                raise not_found(f"client {name!r} not found")
            old = clients[index] if index is not None else None
            entry = None if delete else parse_client(body, old, self.face.settings.ca_dir)
            new_name = entry["name"] if entry is not None else None
            if (delete or new_name != name) and old is not None:
                users = exit_users(db, name)
                if users:
                    raise conflict(f"client {name!r} is the exit of user(s) {', '.join(users)}; "
                                   f"change their exit paths first")
            if entry is not None and new_name != name and any(c.get("name") == new_name for c in clients):
                raise conflict(f"client {new_name!r} exists")
            if entry is not None and new_name in self_names(db, self.face):
                raise bad_request(f"name {new_name!r} is this node's own name or id")
            if index is None:
                if len(clients) >= MAX_CLIENTS:
                    raise bad_request(f"at most {MAX_CLIENTS} clients")
                clients.append(entry)
            elif delete:
                clients.pop(index)
            else:
                clients[index] = entry
            write_setting(db, CLIENTS_KEY, clients)
        self.tell_workers()
        return entry

    def create(self, body) -> dict:
        return self._change(None, body)

    def update(self, name: str, body) -> dict:
        return self._change(name, body)

    def delete(self, name: str) -> None:
        self._change(name, None, delete=True)

    def tell_workers(self) -> None:
        """The store already holds the change; a supervisor that cannot be reached only delays
        it until the workers' next health check rereads the row."""
        try:
            self.face.tell_workers("peers_changed", {})
        except Exception as exc:        # noqa: BLE001 - any failure here is only a delay
            log.warning("hy2scale: peers_changed not delivered: %s", exc)


def self_names(db, face: ScaleFace) -> set[str]:
    """The names this node goes by (its id and name): no exit or client may use them."""
    rec = read_setting(db, NODE_KEY, {}) or {}
    names = {rec.get("node_id"), rec.get("name") or face.node.config.name}
    return {n for n in names if isinstance(n, str) and n}


class Clients:
    def __init__(self, book: ClientBook):
        self.book = book

    def on_get(self, req, resp):
        resp.media = [public_view(c) for c in self.book.list()]

    def on_post(self, req, resp):
        entry = self.book.create(v.json_object(req))
        resp.status = "201 Created"
        resp.media = public_view(entry)


class ClientItem:
    def __init__(self, book: ClientBook):
        self.book = book

    def on_get(self, req, resp, name):
        resp.media = public_view(self.book.get(name))

    def on_put(self, req, resp, name):
        resp.media = public_view(self.book.update(name, v.json_object(req)))

    def on_delete(self, req, resp, name):
        self.book.delete(name)
        resp.media = {"ok": True, "name": name}


class ClientDisable:
    def __init__(self, book: ClientBook):
        self.book = book

    def on_put(self, req, resp, name):
        body = v.json_object(req, allowed={"disabled"}, required={"disabled"})
        resp.media = public_view(self.book.update(name, {"disabled": v.boolean(body, "disabled")}))

    on_post = on_put
