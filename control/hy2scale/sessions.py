"""Sessions: the live Hysteria 2 connections, grouped into devices (user, remote ip, protocol).

Read from the shared-memory connection slots (never asked of a worker).  A device's ``key`` is
a hash of its three parts, stable for as long as the device is connected.  ``DELETE`` closes
every connection of the device on every worker and refuses it at auth for ``scale.kickRefusal``
(60 s by default) through the workers' ``refuse_device`` command; the refusal is also written
to the store, so a worker that starts or restarts within that time refuses the device too.
"""
from __future__ import annotations

import hashlib
import time


from fastpath.control.errors import not_found
from fastpath.control.hy2scale.face import ScaleFace
from fastpath.control.hy2scale.user_cache import ScaleUserCache
from fastpath.control.node_model import NodeUnavailable
from fastpath.shm import KIND_CONNECTION

PROTOCOL = "hysteria2"


def host_of(peer: str) -> str:
    """``1.2.3.4:5`` → ``1.2.3.4``; ``[::1]:5`` → ``::1``."""
    return peer.rpartition(":")[0].strip("[]") if ":" in peer else peer


def device_key(user_id: str, ip: str, protocol: str) -> str:
    return hashlib.sha256(f"{user_id}\0{ip}\0{protocol}".encode()).hexdigest()[:16]


def _iso_ns(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns // 1_000_000_000))


class Devices:
    def __init__(self, face: ScaleFace, users: ScaleUserCache):
        self.face = face
        self.users = users
        self._keys: dict[tuple[str, str], str] = {}

    def key(self, uid: str, ip: str) -> str:
        key = self._keys.get((uid, ip))
        if key is None:
            if len(self._keys) > 100_000:
                self._keys.clear()
            key = self._keys[(uid, ip)] = device_key(uid, ip, PROTOCOL)
        return key

    def devices(self) -> list[dict]:
        try:
            slots = self.face.node.slots([KIND_CONNECTION])
        except NodeUnavailable:
            slots = []
        groups: dict[tuple, dict] = {}
        for s in slots:
            ip = host_of(s["text_a"])
            uid = s["key"]
            dev = groups.get((uid, ip))
            if dev is None:
                dev = groups[(uid, ip)] = {"user_id": uid, "remote_ip": ip, "first_ns": s["created_ns"],
                                           "conn_count": 0, "tx_bytes": 0, "rx_bytes": 0}
            dev["conn_count"] += 1
            dev["tx_bytes"] += s["tx"]
            dev["rx_bytes"] += s["rx"]
            dev["first_ns"] = min(dev["first_ns"], s["created_ns"])
        names = self.users.names() if groups else {}
        now = time.time()
        out = []
        for (uid, ip), dev in groups.items():
            first = dev.pop("first_ns")
            out.append({
                "key": self.key(uid, ip),
                "username": names.get(uid, uid),
                "user_id": uid,
                "remote_ip": ip,
                "protocol": PROTOCOL,
                "connect_at": _iso_ns(first),
                "duration": max(0, int(now - first / 1e9)),
                "conn_count": dev["conn_count"],
                "tx_bytes": dev["tx_bytes"],
                "rx_bytes": dev["rx_bytes"],
            })
        out.sort(key=lambda d: (d["username"], d["remote_ip"]))
        return out


class Sessions:
    def __init__(self, devices: Devices):
        self.devices = devices

    def on_get(self, req, resp):
        devices = self.devices.devices()
        resp.media = {"devices": devices, "total": len(devices)}


class SessionItem:
    def __init__(self, devices: Devices):
        self.devices = devices

    def on_delete(self, req, resp, key):
        device = next((d for d in self.devices.devices() if d["key"] == key), None)
        if device is None:
            raise not_found(f"no connected device {key!r}")
        seconds = self.devices.face.settings.kick_refusal
        self.devices.face.ledger.refuse_device(device["user_id"], device["remote_ip"], seconds)
        results = self.devices.face.tell_workers(
            "refuse_device", {"user": device["user_id"], "ip": device["remote_ip"], "seconds": seconds})
        closed = sum(_ints(results))
        resp.media = {"ok": True, "key": key, "closed": closed, "refused_for": seconds}


def _ints(results):
    for r in results or ():
        if isinstance(r, list):
            yield from _ints(r)
        elif isinstance(r, int) and not isinstance(r, bool):
            yield r
