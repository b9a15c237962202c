"""Nested discovery: the peers of this node's peers, as far as each node allows.

Each node answers ``_relay_list_peers_:0`` (``fastpath.mesh.wire``) with its clients: name,
``connected``, one-hop ``latency_ms``, ``max_rate`` and, for the clients it has marked nested
(``PUT /peers/{path}/nested``), what it has learnt below them in turn (the reference's rule:
a node publishes descendants only of the peers it authorised, so the answer stays the size of
what each node chose to show, never an unbounded walk).

This node asks every connected client it marked nested for that list each
``REFRESH_SECONDS`` (at most ``max_fetch_fan_out`` at once, answers over
``max_response_bytes`` dropped) and keeps a flat cache keyed by qualified path
(``b``, ``b/c``, ...), down to ``max_nested_depth`` levels and at most ``max_cache_entries``
keys.  A tree is assembled from the cache (at most ``max_response_nodes`` nodes) for the
topology and for this node's own answer.

Cycles: an entry that names a node already on the way (this node's id or name, or any node
above it on the path, by name or by the ``node_id`` a node reports for its peers) is dropped,
so A → B → A shows no second A.  Node ids: each node asks its connected clients for
``_relay_node_info_:0`` (``{"node_id", "name"}``) once per connection and puts the id into its
list entries (an extension: reference nodes ignore it and do not answer the request).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time

log = logging.getLogger("fastpath.mesh.nested")

from fastpath.mesh.wire import LIST_PEERS, NODE_INFO, encode_node_info
REFRESH_SECONDS = 3.0
FETCH_TIMEOUT = 3.0
MBIT = 125_000

# (default, maximum), as the reference clamps them (<= 0 means the default).
LIMITS = {
    "max_nested_depth": (5, 10),
    "max_response_nodes": (1024, 65536),
    "max_cache_entries": (5000, 100_000),
    "max_response_bytes": (1 << 20, 16 << 20),
    "max_fetch_fan_out": (8, 64),
}


def clamp(name: str, value) -> int:
    default, top = LIMITS[name]
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        return default
    return min(value, top)


def limits(ui: dict) -> dict:
    ui = ui if isinstance(ui, dict) else {}
    return {k: clamp(k, ui.get(k)) for k in LIMITS}


def _rate(entry: dict, name: str) -> int:
    exact = entry.get(name + "_bps")
    if isinstance(exact, int) and not isinstance(exact, bool):
        return exact
    v = entry.get(name)
    return int(v) * MBIT if isinstance(v, int) and not isinstance(v, bool) else 0


def _child(raw) -> dict | None:
    """One entry of a peer's list, reduced to the fields we keep (anything else dropped)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        return None
    name = raw["name"][:64]
    lat = raw.get("latency_ms")
    out = {"name": name, "exit_node": bool(raw.get("exit_node", True)),
           "direction": raw.get("direction") if raw.get("direction") in ("outbound", "inbound") else "outbound",
           "latency_ms": int(lat) if isinstance(lat, (int, float)) and not isinstance(lat, bool) else -1,
           "connected": bool(raw.get("connected", True)),
           "max_rate": int(raw["max_rate"]) if isinstance(raw.get("max_rate"), int) and raw["max_rate"] > 0 else 0}
    if isinstance(raw.get("node_id"), str) and raw["node_id"]:
        out["node_id"] = raw["node_id"][:64]
    if isinstance(raw.get("version"), str):
        out["version"] = raw["version"][:32]
    kids = raw.get("children")
    out["_children"] = kids if isinstance(kids, list) else []
    return out


def walk(prefix: str, children, ancestors: set, depth: int, lim: dict, cache: dict) -> None:
    """Cache ``children`` under ``prefix`` (flat), then their own children, dropping names
    and ids already on the way; stops at the depth and cache-size limits."""
    if depth >= lim["max_nested_depth"] or len(cache) >= lim["max_cache_entries"]:
        return
    flat = []
    kept = []
    for raw in children:
        c = _child(raw)
        if c is None or c["name"] in ancestors or c.get("node_id") in ancestors:
            continue
        if any(f["name"] == c["name"] for f in flat):
            continue
        kids = c.pop("_children")
        flat.append(c)
        kept.append((c, kids))
    if not flat:
        return
    cache[prefix] = flat
    for c, kids in kept:
        if not kids:
            continue
        mark = {c["name"]} | ({c["node_id"]} if c.get("node_id") else set())
        added = mark - ancestors
        ancestors |= added
        walk(prefix + "/" + c["name"], kids, ancestors, depth + 1, lim, cache)
        ancestors -= added


class NestedDiscovery:
    def __init__(self, store, peers, node_id_fn, name_fn):
        self.store = store
        self.peers = peers                  # ExitPeers
        self.node_id = node_id_fn
        self.node_name = name_fn
        self.cache: dict[str, list[dict]] = {}
        self.ids: dict[str, tuple[object, str]] = {}     # client name -> (connection, node id)
        self.settings: dict = {}
        self.lim = limits({})
        self.refreshed_at = 0.0
        self._task = None
        self._kick = asyncio.Event()

    def reload(self) -> None:
        raw = self.store.get_setting("hy2scale.peers", {}) or {}
        self.settings = raw if isinstance(raw, dict) else {}
        self.lim = limits(self.store.get_setting("hy2scale.ui", {}) or {})

    def is_nested(self, path: str) -> bool:
        entry = self.settings.get(path)
        return isinstance(entry, dict) and bool(entry.get("nested"))

    def kick(self) -> None:
        self._kick.set()

    # -- fetching -----------------------------------------------------------------------------
    async def _read(self, peer, address: str, cap: int) -> bytes | None:
        try:
            async with asyncio.timeout(FETCH_TIMEOUT):
                client = await peer.connection()
                reader, writer = await client.open_tcp(address)
                data = bytearray()
                while len(data) <= cap:
                    chunk = await reader.read(65536)
                    if not chunk:
                        break
                    data += chunk
                writer.close()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("nested: %s from %s: %s", address, peer.name, exc)
            return None
        if len(data) > cap:
            log.info("nested: %s answered more than %d bytes; dropped", peer.name, cap)
            return None
        return bytes(data)

    async def _learn_id(self, peer) -> None:
        conn = peer.current
        known = self.ids.get(peer.name)
        if known is not None and known[0] is conn:
            return
        # Identified (so the peer lists this node as its inbound peer); a node that does
        # not know that form (an older one) is asked the plain way.
        data = await self._read(peer, encode_node_info(self.node_id(), self.node_name() or self.node_id()), 4096)
        if data is None:
            data = await self._read(peer, NODE_INFO, 4096)
        try:
            info = json.loads(data) if data else None
        except ValueError:
            info = None
        node_id = info.get("node_id") if isinstance(info, dict) else None
        self.ids[peer.name] = (conn, node_id if isinstance(node_id, str) else "")

    async def _fetch(self, name: str, sem: asyncio.Semaphore):
        async with sem:
            peer = self.peers.peers.get(name)
            if peer is None:
                return name, None
            await self._learn_id(peer)
            data = await self._read(peer, LIST_PEERS, self.lim["max_response_bytes"])
        if data is None:
            return name, None
        try:
            got = json.loads(data)
        except ValueError:
            return name, None
        return name, got if isinstance(got, list) else None

    async def refresh(self) -> None:
        self.reload()
        lim = self.lim
        connected = [n for n, p in self.peers.peers.items() if p.connected]
        sem = asyncio.Semaphore(lim["max_fetch_fan_out"])

        async def learn(name):
            async with sem:
                peer = self.peers.peers.get(name)
                if peer is not None:
                    await self._learn_id(peer)
        # The ids of every connected client, for our own list's entries.
        await asyncio.gather(*(learn(n) for n in connected), return_exceptions=True)
        wanted = [n for n in connected if self.is_nested(n)]
        results = await asyncio.gather(*(self._fetch(n, sem) for n in wanted), return_exceptions=True)
        cache: dict[str, list[dict]] = {}
        me = {self.node_id(), self.node_name()} - {""}
        for r in results:
            if isinstance(r, BaseException) or r[1] is None:
                continue
            name, children = r
            ancestors = set(me) | {name}
            own = self.ids.get(name, (None, ""))[1]
            if own:
                ancestors.add(own)
            walk(name, children, ancestors, 0, lim, cache)
        self.cache = cache
        self.refreshed_at = time.monotonic()

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("nested discovery failed")
            try:
                async with asyncio.timeout(REFRESH_SECONDS):
                    await self._kick.wait()
            except TimeoutError:
                pass
            self._kick.clear()

    def start(self) -> None:
        self.reload()
        self._task = asyncio.ensure_future(self._run())

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    # -- trees --------------------------------------------------------------------------------
    def assemble(self, prefix: str, depth: int, count: list, *, ui: bool, parent_latency: int = 0) -> list:
        """The tree below ``prefix`` from the cache: for this node's own answer (``ui``
        false: one-hop latencies, as the wire carries them) or for its topology (cumulative
        latency from here, ``via``, and the ``nested`` flags of this node's settings)."""
        lim = self.lim
        if depth >= lim["max_nested_depth"] or count[0] >= lim["max_response_nodes"]:
            return []
        out = []
        for c in self.cache.get(prefix, ()):
            if count[0] >= lim["max_response_nodes"]:
                break
            count[0] += 1
            qkey = prefix + "/" + c["name"]
            entry = {k: v for k, v in c.items()}
            nested = self.is_nested(qkey)
            if ui:
                lat = c["latency_ms"]
                if lat >= 0 and parent_latency >= 0:
                    lat += parent_latency
                entry.update(latency_ms=lat, via=prefix.rsplit("/", 1)[-1], nested=nested,
                             tx_rate=0, rx_rate=0, disabled=False)
            entry["children"] = (self.assemble(qkey, depth + 1, count, ui=ui, parent_latency=entry["latency_ms"])
                                 if nested and c["connected"] else [])
            out.append(entry)
        out.sort(key=lambda e: e["name"])
        return out

    def peer_list(self) -> list[dict]:
        """This node's answer to ``_relay_list_peers_`` (and to ``/api/internal/peers``)."""
        out = []
        for c in self.peers.known.values():
            if c.get("disabled"):
                continue
            name = c["name"]
            peer = self.peers.peers.get(name)
            connected = bool(peer is not None and peer.connected)
            lat = peer.latency_ms() if connected else None
            entry = {"name": name, "exit_node": True, "direction": "outbound", "native": False,
                     "latency_ms": int(round(lat)) if lat is not None else (0 if connected else -1),
                     "connected": connected,
                     "max_rate": max(_rate(c, "max_tx"), _rate(c, "max_rx"))}
            node_id = self.ids.get(name, (None, ""))[1]
            if node_id:
                entry["node_id"] = node_id
            if self.is_nested(name) and connected:
                entry["children"] = self.assemble(name, 0, [0], ui=False)
            out.append(entry)
        out.sort(key=lambda e: e["name"])
        return out

    def children(self, name: str, latency) -> list:
        """The topology's children of this node's client ``name``."""
        lat = int(round(latency)) if isinstance(latency, (int, float)) else -1
        return self.assemble(name, 0, [0], ui=True, parent_latency=lat)
