"""The peer list: this node first, then one entry per client (outbound peer).

The figures come from the workers in one broadcast (``peers_status``): a client is
``connected`` when any worker holds a live connection to it, ``latency_ms`` is the smallest
smoothed RTT among those connections (aioquic's estimate, refreshed by a PING every health
check), ``tx_rate`` / ``rx_rate`` are bytes per second through it over the last ~5 s, summed
over the workers; ``nested`` is the client's nested flag and ``children`` what nested
discovery found below it (``fastpath.mesh.nested``).  Then the inbound peers (the nodes that
dial this one, ``direction: "inbound"``), as the reference lists them too.
"""
from __future__ import annotations

import falcon

from fastpath.control.hy2scale.clients import ClientBook
from fastpath.control.hy2scale.node_info import NodeSettings
from fastpath.control.node_model import NodeUnavailable
from fastpath.mesh.egress import PEERS_KEY


def merge(results) -> dict[str, dict]:
    """Per client name, the workers' answers folded into one."""
    out: dict[str, dict] = {}
    for r in results or ():
        if isinstance(r, list):          # several handlers of one command
            r = next((x for x in r if isinstance(x, dict)), {})
        if not isinstance(r, dict):
            continue
        for name, st in r.items():
            if not isinstance(st, dict):
                continue
            agg = out.setdefault(name, {"connected": False, "latency_ms": None, "tx_rate": 0, "rx_rate": 0,
                                        "error": ""})
            if st.get("children") and not agg.get("children"):
                agg["children"] = st["children"]          # nested discovery: any worker's view
            agg["tx_rate"] += int(st.get("tx_rate") or 0)
            agg["rx_rate"] += int(st.get("rx_rate") or 0)
            if st.get("connected"):
                agg["connected"] = True
                lat = st.get("latency_ms")
                if lat is not None and (agg["latency_ms"] is None or lat < agg["latency_ms"]):
                    agg["latency_ms"] = lat
            elif st.get("error") and not agg["error"]:
                agg["error"] = st["error"]
    return out


def inbound_peers(face) -> list[dict]:
    """The identified peer nodes connected to this node, one per node id (a node with several
    workers dials once per worker): its name, the users it logged in as, the smallest RTT."""
    try:
        answers = face.tell_workers("inbound_peers", {})
    except (falcon.HTTPError, NodeUnavailable):
        return []
    out: dict[str, dict] = {}
    for answer in answers if isinstance(answers, list) else ():
        peers = answer.get("peers") if isinstance(answer, dict) else None
        for p in peers if isinstance(peers, list) else ():
            if not isinstance(p, dict) or not isinstance(p.get("node_id"), str):
                continue
            agg = out.setdefault(p["node_id"], {"node_id": p["node_id"], "name": p.get("name") or p["node_id"],
                                                "users": set(), "latency_ms": None})
            if isinstance(p.get("user"), str):
                agg["users"].add(p["user"])
            lat = p.get("latency_ms")
            if isinstance(lat, (int, float)) and (agg["latency_ms"] is None or lat < agg["latency_ms"]):
                agg["latency_ms"] = lat
    return sorted(out.values(), key=lambda p: (p["name"], p["node_id"]))


def nested_flag(face, path: str) -> bool:
    flags = face.setting(PEERS_KEY, {}) or {}
    entry = flags.get(path) if isinstance(flags, dict) else None
    return isinstance(entry, dict) and bool(entry.get("nested"))


class Peers:
    def __init__(self, book: ClientBook, node_settings: NodeSettings):
        self.book = book
        self.node_settings = node_settings

    def on_get(self, req, resp):
        clients = self.book.list()
        status = {}
        if any(not c.get("disabled") for c in clients):
            try:
                status = merge(self.book.face.tell_workers("peers_status", {}))
            except (falcon.HTTPError, NodeUnavailable):
                status = {}
        out = [{"name": self.node_settings.stored()["node_id"], "direction": "local", "latency_ms": 0,
                "is_self": True}]
        for c in clients:
            st = status.get(c["name"], {})
            entry = {"name": c["name"], "direction": "outbound", "connected": bool(st.get("connected")),
                     "latency_ms": st.get("latency_ms"), "nested": nested_flag(self.book.face, c["name"]),
                     "version": "", "tx_rate": st.get("tx_rate", 0), "rx_rate": st.get("rx_rate", 0),
                     "children": st.get("children") or [] if st.get("connected") else [],
                     "disabled": bool(c.get("disabled")), "addr": c.get("addr", "")}
            if st.get("error") and not entry["connected"]:
                entry["error"] = st["error"]
            out.append(entry)
        for p in inbound_peers(self.book.face):     # the nodes that dial this one, as the reference lists them
            lat = p["latency_ms"]
            out.append({"name": p["name"], "node_id": p["node_id"], "direction": "inbound", "exit_node": False,
                        "connected": True, "latency_ms": int(round(lat)) if lat is not None else 0,
                        "nested": False, "version": "", "children": [], "disabled": False})
        resp.media = out
