"""``GET /topology`` and ``GET /stats``: what the reference UI polls on every page.

Topology is the Nodes graph, the peer count and the exit-via picker: an array with this node
first (``direction: "local"``, ``is_self``, ``connected``, its Hysteria 2 ``addr`` and its
inbound peers as ``children``), then one entry per client (outbound peer) with ``addr``, every
address in ``addrs``, ``connected``, ``disabled``, ``latency_ms`` (an integer; -1 while not
connected, as the reference), ``tx_rate`` / ``rx_rate`` (bytes/s through the peer, from the
workers' ``peers_status``) and ``max_rate`` (bytes/s: the larger of the client's ``max_tx`` and
``max_rx``, 0 when unknown).

Inbound peers: a peer node that dials this one logs in as an ordinary scale user; it names
itself in the node-info request it sends once per connection (``fastpath.mesh.inbound``),
and the workers list the peers on their open connections (``inbound_peers``).  Each is one of
self's ``children`` as the reference shows them: ``{name, node_id, exit_node: false,
direction: "inbound", via`` (this node's id), ``latency_ms`` (the connection's smoothed RTT),
``nested: false, disabled: false, version, tx_rate, rx_rate`` (bytes/s of the user it logged
in as), ``max_rate: 0, connected: true, children: []}`` (this node has no client to it, so it
neither relays through it nor discovers below it), and ``stats.exit_clients`` counts them.
A reference node does not name itself, so it is not listed (nothing is guessed).  An outbound
peer marked nested (``PUT /peers/{path}/nested``) carries what
nested discovery found below it as ``children`` (``fastpath.mesh.nested``: the reference's
depth, size and fan-out limits, cycles dropped), each ``{name, direction, via, connected,
latency_ms`` (cumulative from this node), ``nested, max_rate, tx_rate, rx_rate, children}``.

Stats are the four cards: ``tx_bytes`` / ``rx_bytes`` (every byte the node counted, carried
plus live), ``tx_rate`` / ``rx_rate`` (bytes/s of the users' traffic over the last few seconds,
from this API process's own samples of the shared-memory totals; 0 on the first poll),
``conns`` (live Hysteria 2 connections in the connection slots) and ``exit_clients``.
"""
from __future__ import annotations

import collections
import threading
import time

import falcon

from fastpath.control.hy2scale.clients import ClientBook, all_addrs, rate_bytes
from fastpath.control.hy2scale.node_info import NodeSettings, traffic_totals
from fastpath.control.hy2scale.peers import inbound_peers, merge, nested_flag
from fastpath.control.node_model import NodeUnavailable
from fastpath.shm import KIND_CONNECTION, count_kinds, scan_totals, scan_users

RATE_WINDOW = 10.0      # seconds of samples a rate is taken over (the UI polls every 2-5 s)
MIN_SPAN = 0.5          # a rate needs samples at least this far apart


def peer_status(book: ClientBook) -> dict:
    """The workers' view of every enabled client (one broadcast), {} when none is enabled or
    the supervisor cannot be reached (then every peer shows as not connected)."""
    if not any(not c.get("disabled") for c in book.list()):
        return {}
    try:
        return merge(book.face.tell_workers("peers_status", {}))
    except (falcon.HTTPError, NodeUnavailable):
        return {}


def outbound_entry(client: dict, st: dict, nested: bool = False) -> dict:
    disabled = bool(client.get("disabled"))
    connected = bool(st.get("connected")) and not disabled
    lat = st.get("latency_ms")
    latency = int(round(lat)) if connected and lat is not None else (0 if connected else -1)
    max_rate = max(rate_bytes(client, "max_tx"), rate_bytes(client, "max_rx"))
    entry = {"name": client["name"], "direction": "outbound", "addr": client.get("addr", ""),
             "addrs": all_addrs(client), "exit_node": True, "connected": connected,
             "disabled": disabled, "nested": nested, "native": False, "version": "",
             "latency_ms": latency, "tx_rate": int(st.get("tx_rate") or 0),
             "rx_rate": int(st.get("rx_rate") or 0), "max_rate": max_rate, "is_self": False,
             "children": (st.get("children") or []) if nested and connected else []}
    if st.get("error") and not connected:
        entry["error"] = st["error"]
    return entry


class UserRates:
    """Bytes/s per user (the inbound peers' users), one ``RateMeter`` each, sampled when the
    topology is read; meters of users no longer asked about are dropped."""

    def __init__(self):
        self.meters: dict[str, RateMeter] = {}

    def rates(self, face, users: set) -> dict[str, tuple[int, int]]:
        self.meters = {u: m for u, m in self.meters.items() if u in users}
        if not users:
            return {}
        try:
            totals = scan_users(face.node.table)
        except NodeUnavailable:
            return {}
        out = {}
        for u in users:
            tx, rx = (totals.get(u) or (0, 0))[:2]
            out[u] = self.meters.setdefault(u, RateMeter()).rates(tx, rx)
        return out


def inbound_entry(peer: dict, via: str, rates: dict) -> dict:
    lat = peer["latency_ms"]
    tx = sum(rates.get(u, (0, 0))[0] for u in peer["users"])
    rx = sum(rates.get(u, (0, 0))[1] for u in peer["users"])
    return {"name": peer["name"], "node_id": peer["node_id"], "exit_node": False, "direction": "inbound",
            "via": via, "latency_ms": int(round(lat)) if lat is not None else 0, "nested": False,
            "disabled": False, "version": "", "tx_rate": tx, "rx_rate": rx, "max_rate": 0,
            "connected": True, "children": []}


class Topology:
    def __init__(self, book: ClientBook, node_settings: NodeSettings):
        self.book = book
        self.node_settings = node_settings
        self.user_rates = UserRates()

    def tree(self) -> list[dict]:
        view = self.node_settings.view()
        me = {"name": view["node_id"], "node_id": view["node_id"], "display_name": view["name"],
              "direction": "local", "addr": view["server_effective"].get("listen") or view["server"].get("listen") or "",
              "exit_node": bool(view["exit_node"]), "connected": True,
              "disabled": not view["server_effective"].get("listen"), "nested": False,
              "native": False, "version": view["version"], "latency_ms": 0, "tx_rate": 0,
              "rx_rate": 0, "max_rate": 0, "is_self": True, "children": []}
        inbound = inbound_peers(self.book.face)
        rates = self.user_rates.rates(self.book.face, set().union(*(p["users"] for p in inbound)))
        me["children"] = [inbound_entry(p, view["node_id"], rates) for p in inbound]
        status = peer_status(self.book)
        peers = [outbound_entry(c, status.get(c["name"], {}), nested_flag(self.book.face, c["name"]))
                 for c in self.book.list()]
        me["tx_rate"] = sum(p["tx_rate"] for p in peers)
        me["rx_rate"] = sum(p["rx_rate"] for p in peers)
        return [me, *sorted(peers, key=lambda p: p["name"])]

    def on_get(self, req, resp):
        resp.media = self.tree()


class RateMeter:
    """Bytes/s from samples of a growing total, taken when asked (no background thread: an
    API process only samples while someone polls).  A total that goes down (the supervisor
    replaced the counter segment) starts the samples afresh."""

    def __init__(self, window: float = RATE_WINDOW):
        self.window = window
        self.samples: collections.deque = collections.deque()
        self.lock = threading.Lock()

    def rates(self, tx: int, rx: int, now: float | None = None) -> tuple[int, int]:
        now = time.monotonic() if now is None else now
        with self.lock:
            if self.samples and (tx < self.samples[-1][1] or rx < self.samples[-1][2]):
                self.samples.clear()
            self.samples.append((now, tx, rx))
            while len(self.samples) > 2 and now - self.samples[1][0] >= self.window:
                self.samples.popleft()
            t0, tx0, rx0 = self.samples[0]
            span = now - t0
            if span < MIN_SPAN:
                return 0, 0
            return round((tx - tx0) / span), round((rx - rx0) / span)


class Stats:
    def __init__(self, face):
        self.face = face
        self.meter = RateMeter()

    def on_get(self, req, resp):
        tx, rx = traffic_totals(self.face)
        try:
            table = self.face.node.table
            _used, ltx, lrx = scan_totals(table)
            conns = sum(shard[KIND_CONNECTION] for shard in count_kinds(table))
        except NodeUnavailable:
            ltx = lrx = conns = 0
        tx_rate, rx_rate = self.meter.rates(ltx, lrx)
        resp.media = {"tx_bytes": tx, "rx_bytes": rx, "tx_rate": tx_rate, "rx_rate": rx_rate,
                      "conns": conns, "exit_clients": len(inbound_peers(self.face))}
