"""The smaller routes the reference UI calls: password conflicts, the Shadowsocks inbound, the
system facts and the diagnostics (the proxy listeners: ``proxies.py``; rules: ``mesh_api.py``).

Each answers the reference's shape with what this node really has; where the node lacks the
feature the answer says so in the field the UI reads (``capable``) instead of pretending.
"""
from __future__ import annotations

import os
import platform
import re
import socket
import threading

from fastpath.control.errors import bad_request
from fastpath.control.hy2scale.clients import ClientBook
from fastpath.control.hy2scale.topology import peer_status
from fastpath import __version__

HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_-]{1,63})*\.?$")
RESOLVE_TIMEOUT = 5.0
SS_METHODS = ("aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305", "2022-blake3-aes-128-gcm",
              "2022-blake3-aes-256-gcm", "2022-blake3-chacha20-poly1305")      # the reference's list


def unavailable(resp, message: str, status: str = "501 Not Implemented", **extra) -> None:
    """The 501 body the UI's error toast shows (``error``) and ``capable: false``."""
    resp.status = status
    resp.media = {"error": message, "message": message, "capable": False, **extra}


class UserConflicts:
    """``GET /users/conflicts``: users sharing a password on a password-only inbound.

    The reference lists them per inbound where a password alone names the user (its Hysteria 2
    password auth and Shadowsocks).  Here a scale user's secret is ``username:password``, which
    Hysteria 2, the Shadowsocks inbound (its key) and Trojan use, and secrets are unique among
    the node's users (``users.py`` refuses a duplicate); SOCKS5/HTTP take a user name too.  So
    two users can never share what names them: the map is always empty, ``{}`` as the
    reference sends when there is no conflict."""

    def on_get(self, req, resp):
        resp.media = {}


class Shadowsocks:
    """``GET/PUT /ss``: the Shadowsocks inbound, which this node takes from its config
    (``inbounds:`` with ``type: shadowsocks``), not from the API.  GET answers the first one in
    the reference's shape (``{listen, enabled, method}``, ``managed_by: "config"``), or the
    reference's empty configuration with ``capable: false`` when none is configured; a PUT that
    would change what runs answers 501 and stores nothing; one that matches it answers 200."""

    WHY = "Shadowsocks: the inbound is set in the node config (inbounds: type shadowsocks), not here"

    def __init__(self, face):
        self.face = face

    def current(self) -> dict:
        for inbound in self.face.node.config.sections.get("inbounds") or []:
            if inbound.type == "shadowsocks":
                return {"listen": _listen(inbound.listen), "enabled": True, "method": inbound.method or "",
                        "capable": True, "managed_by": "config", "tag": inbound.tag}
        return {"listen": "", "enabled": False, "method": "aes-256-gcm", "capable": False,
                "reason": "no Shadowsocks inbound in the node config (inbounds: type shadowsocks)"}

    def on_get(self, req, resp):
        resp.media = self.current()

    def on_put(self, req, resp):
        from fastpath.control import validation as v
        body = v.json_object(req)
        for name, kind in (("listen", str), ("enabled", bool), ("method", str)):
            if body.get(name) is not None and not isinstance(body[name], kind):
                raise bad_request(f"{name} must be {'true or false' if kind is bool else 'text'}")
        if body.get("method") not in (None, "", *SS_METHODS):
            raise bad_request(f"method must be one of {', '.join(SS_METHODS)}")
        now = self.current()
        if any(body.get(k) is not None and body[k] != now[k] for k in ("listen", "enabled", "method")):
            unavailable(resp, self.WHY)
            return
        resp.media = now


def _listen(listen) -> str:
    host, port = listen
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def in_container() -> bool:
    if os.path.exists("/.dockerenv"):
        return True
    try:
        with open("/proc/1/cgroup") as f:
            text = f.read()
    except OSError:
        return False
    return any(word in text for word in ("docker", "containerd", "/lxc/"))


class SystemArch:
    """``GET /system/arch``: the reference names its Go target; here the OS and machine of the
    running Python, and the program that runs the node."""

    def on_get(self, req, resp):
        machine = platform.machine().lower()
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
        resp.media = {"os": platform.system().lower(), "arch": arch,
                      "version": __version__, "binary": "fastpath", "in_docker": in_container(),
                      "python": platform.python_version()}


def resolve(name: str, timeout: float) -> list[str]:
    """The node's own resolver (getaddrinfo), bounded by ``timeout``."""
    out: dict = {}

    def run():
        try:
            infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
            out["ips"] = list(dict.fromkeys(i[4][0] for i in infos))
        except OSError as exc:
            out["error"] = str(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError(f"no answer within {timeout:g} s")
    if "error" in out:
        raise OSError(out["error"])
    return out["ips"]


class DiagResolve:
    """``GET /diag/resolve?name=&exit_via=``: ``{name, exit_via, ips[, error]}``.  Without
    ``exit_via`` the name is resolved by the node's own resolver; the reference can also
    resolve through an exit peer, which this node cannot (its peers carry user streams, not
    the node's own lookups): that case answers with ``error`` and no ips."""

    def __init__(self, book: ClientBook):
        self.book = book

    def on_get(self, req, resp):
        name = req.get_param("name") or ""
        exit_via = req.get_param("exit_via") or ""
        if not name:
            raise bad_request("name required")
        if not HOSTNAME.match(name):
            raise bad_request(f"name {name[:64]!r} is not a host name")
        out = {"name": name, "exit_via": exit_via, "ips": []}
        if exit_via:
            if not any(c.get("name") == exit_via for c in self.book.list()):
                raise bad_request(f"exit_via {exit_via[:64]!r} is not a client of this node")
            out["error"] = "resolving through an exit peer is not supported by this node"
        else:
            try:
                out["ips"] = resolve(name, RESOLVE_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                out["error"] = str(exc)
        resp.media = out


class DiagPeers:
    """``GET /diag/peer-health``, ``/diag/peer-rebinds``, ``/diag/peer-latency``: ``{peers:
    [...]}``, one row per client, from the workers' ``peers_status``.

    What this node measures: connected, the current RTT, bytes each way, live streams, the
    address in use and the last error.  The reference also counts pings ok/failed and keeps a
    latency history ring; here the health check's PING failures show as a disconnect with its
    error, and ``history`` is empty (no process keeps a ring).  Rebind probes do not exist in
    this data plane (a stream that breaks fails; it is never re-bound), so ``rebind_checks`` is
    0 by construction."""

    def __init__(self, book: ClientBook, kind: str):
        self.book = book
        self.kind = kind

    def on_get(self, req, resp):
        status = peer_status(self.book)
        rows = []
        for c in self.book.list():
            st = status.get(c["name"], {})
            row = {"name": c["name"], "direction": "outbound"}
            lat = st.get("latency_ms")
            latency = int(round(lat)) if st.get("connected") and lat is not None else -1
            if self.kind == "health":
                row.update({"connected": bool(st.get("connected")), "disabled": bool(c.get("disabled")),
                            "latency_ms": latency, "tx_bytes": int(st.get("tx_bytes") or 0),
                            "rx_bytes": int(st.get("rx_bytes") or 0),
                            "streams": int(st.get("streams") or 0), "error": st.get("error") or ""})
            elif self.kind == "rebinds":
                row["rebind_checks"] = 0
            else:
                row.update({"latency_ms": latency, "history": []})
            rows.append(row)
        resp.media = {"peers": rows}
