"""Where a worker's user traffic leaves: here, or along an exit path of the mesh.

A *route* is ``(paths, mode)`` from the user's ``exit_paths`` / ``exit_mode`` or, when the
target matches a rule (``fastpath.mesh.rules``), from that rule (a rule is the node's policy
for a destination, so it wins over the user's own exit).  A path ``b/c`` is opened on this
node's client ``b`` as a relay request for ``c`` (``fastpath.mesh.wire``), and so on hop by
hop; a one-hop path is a plain request on the client, as the single-hop exits always were.

Choosing among a route's paths:

- mode ``""``: the first path only.
- ``quality``: the healthy path with the lowest measured latency (smoothed, and sticky: the
  path in use stays unless another is clearly faster).  The prober probes every
  path of every quality or aggregate route each ``PROBE_SECONDS``: a ping request carried along
  the whole path (``_relay_ping_:0`` at its end), so the latency is the path's, every hop
  included, and a path with a dead hop is unhealthy within one probe.  A path that fails to
  open a stream is marked unhealthy at once and the next one is tried.
- ``aggregate``: a user's streams go round the healthy paths in turn (each path's own
  congestion control then carries its share).

A stream whose every candidate fails is failed with the reasons: never dialed from here.
"""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time

from fastpath.hy2.client.exit_peers import ExitUnavailable
from fastpath.mesh import wire
from fastpath.mesh.inbound import InboundPeers
from fastpath.mesh.paths import hops, route_of, split_address
from fastpath.mesh.rules import RuleTable
from fastpath.store.ledger import Ledger
from fastpath.store.proxy_listeners import list_proxy_listeners
from fastpath.worker.egress import Egress, as_route

log = logging.getLogger("fastpath.mesh")

NODE_KEY = "hy2scale.node"
RULES_KEY = "hy2scale.rules"
PEERS_KEY = "hy2scale.peers"           # {"<path>": {"nested": bool}} (PUT /peers/{path}/nested)
UI_KEY = "hy2scale.ui"
PROBE_SECONDS = 2.0
PROBE_TIMEOUT = 3.0
HEALTHY_FOR = 2.5 * PROBE_SECONDS       # a success older than this no longer counts
LATENCY_WEIGHT = 0.3                    # each probe's share of the smoothed latency
SWITCH_RATIO = 1.25                     # quality leaves a healthy path only for one faster than
SWITCH_MS = 2.0                         # its latency / SWITCH_RATIO - SWITCH_MS


def ensure_node_id(store) -> str:
    """This node's id (HY2 SCALE ``node_id``), created now if the face has not yet."""
    rec = store.get_setting(NODE_KEY, {}) or {}
    if isinstance(rec, dict) and isinstance(rec.get("node_id"), str) and wire.NODE_ID.match(rec["node_id"]):
        return rec["node_id"]
    with Ledger(store).write() as book:
        rec = book.setting(NODE_KEY, {}) or {}
        if not isinstance(rec, dict):
            rec = {}
        if not (isinstance(rec.get("node_id"), str) and wire.NODE_ID.match(rec["node_id"])):
            rec["node_id"] = secrets.token_hex(4)
            book.set_setting(NODE_KEY, rec)
    return rec["node_id"]


class PathState:
    """What the prober and the streams have learnt about one path."""

    __slots__ = ("path", "latency_ms", "ok_at", "failed_at", "error", "opened", "probes")

    def __init__(self, path: str):
        self.path = path
        self.latency_ms: float | None = None
        self.ok_at = 0.0
        self.failed_at = 0.0
        self.error = ""
        self.opened = 0           # streams (and UDP sessions) opened on it
        self.probes = 0

    def healthy(self, now: float) -> bool:
        return self.ok_at > self.failed_at and now - self.ok_at < HEALTHY_FOR

    def failed(self, error: str) -> None:
        self.failed_at = time.monotonic()
        self.error = error

    def view(self, now: float) -> dict:
        return {"path": self.path, "healthy": self.healthy(now), "latency_ms": self.latency_ms,
                "opened": self.opened, "probes": self.probes, "error": self.error}


class MeshEgress(Egress):
    """The worker's egress (``fastpath.worker.egress.Egress``) over its outbound peers: the
    Hysteria 2 server and the proxy inbounds ask it the route of each stream (``exit_of``)."""

    def __init__(self, store, peers, users=None, name: str = ""):
        self.store = store
        self.default_name = name
        self.peers = peers                 # fastpath.hy2.client.exit_peers.ExitPeers
        self.users = users                 # fastpath.worker.user_directory.UserDirectory
        self.node_id = ensure_node_id(store)
        self.rules = RuleTable()
        self.paths: dict[str, PathState] = {}
        self.turns: dict = {}              # aggregate round-robin position per route
        self.current: dict = {}            # quality: the path in use per route
        self.nested = None                 # fastpath.mesh.nested.NestedDiscovery
        self.inbound = InboundPeers()      # the peer nodes that dial this one
        self.control_addr = None           # (host, port) the remote-UI tunnel dials (fastpath.mesh.api_relay)
        self._task: asyncio.Task | None = None
        self._rules_raw = None
        self.reload()

    # -- configuration ------------------------------------------------------------------------
    def reload(self) -> None:
        """Reread the rules (compiled once per change) and the node's names."""
        raw = self.store.get_setting(RULES_KEY, []) or []
        text = json.dumps(raw, sort_keys=True)
        if text != self._rules_raw:
            self._rules_raw = text
            self.rules = RuleTable(raw if isinstance(raw, list) else [])
        self.node_id = ensure_node_id(self.store)

    def node_name(self) -> str:
        rec = self.store.get_setting(NODE_KEY, {}) or {}
        name = rec.get("name") if isinstance(rec, dict) else None
        return name if isinstance(name, str) and name else self.default_name

    def peer_list(self) -> list:
        return self.nested.peer_list() if self.nested is not None else []

    def peer_status(self) -> dict:
        """The workers' ``peers_status`` answer: each client's figures, with its nested
        children (the topology's) when this node marked it nested."""
        out = self.peers.status()
        if self.nested is not None:
            for name, st in out.items():
                st["nested"] = self.nested.is_nested(name)
                st["children"] = self.nested.children(name, st.get("latency_ms")) if st["nested"] else []
        return out

    def route(self, user_id, host: str, via=None):
        """(paths, mode) for a stream of ``user_id`` to ``host``; None: it leaves here.  A
        rule for ``host`` wins; then ``via`` (the listener's own exit: a path, or a route
        with its mode), then the user's."""
        rule = self.rules.lookup(host) if self.rules.count else None
        if rule is not None:
            return rule.paths, rule.mode
        if via:
            return as_route(via)
        if self.users is None or user_id is None:
            return None
        user = self.users.by_id.get(user_id)
        return route_of(user.meta) if user is not None else None

    def exit_of(self, user_id, host: str = "", via=None):
        """The egress seam's name for ``route``."""
        return self.route(user_id, host, via)

    async def serve_relay(self, pump, address: str, loop, conn=None):
        from fastpath.mesh.relay import serve
        return await serve(self, pump, address, loop, conn)

    def probed_paths(self) -> set[str]:
        """Paths of every quality/aggregate route: users', rules' and the HY2 SCALE proxy
        listeners'."""
        out: set[str] = set()
        if self.users is not None:
            for user in self.users.by_id.values():
                r = route_of(user.meta)
                if r is not None and r[1]:
                    out.update(r[0])
        raw = self.store.get_setting(RULES_KEY, []) or []
        listeners = list_proxy_listeners(self.store)
        for row in (raw if isinstance(raw, list) else []) + [r for r in listeners if r.get("enabled")]:
            if isinstance(row, dict) and row.get("enabled", True) and row.get("exit_mode") in ("quality", "aggregate"):
                out.update(p for p in row.get("exit_paths") or () if isinstance(p, str) and p)
        return out

    def state(self, path: str) -> PathState:
        st = self.paths.get(path)
        if st is None:
            st = self.paths[path] = PathState(path)
        return st

    # -- choosing -----------------------------------------------------------------------------
    def candidates(self, route) -> list[str]:
        paths, mode = route
        if not mode or len(paths) == 1:
            return [paths[0]]
        now = time.monotonic()
        states = [self.state(p) for p in paths]
        healthy = [s for s in states if s.healthy(now)]
        rest = [s for s in states if not s.healthy(now)]
        if mode == "quality":
            healthy.sort(key=lambda s: s.latency_ms if s.latency_ms is not None else float("inf"))
            # Sticky: the path in use stays while it is healthy and not clearly slower than the
            # best (SWITCH_RATIO and SWITCH_MS), so probe noise does not flip streams between
            # paths of about the same latency.
            current = self.current.get(paths)
            cur = next((s for s in healthy if s.path == current), None)
            if cur is not None and healthy and cur is not healthy[0] and cur.latency_ms is not None \
                    and healthy[0].latency_ms is not None \
                    and cur.latency_ms <= healthy[0].latency_ms * SWITCH_RATIO + SWITCH_MS:
                healthy.remove(cur)
                healthy.insert(0, cur)
            if healthy:
                self.current[paths] = healthy[0].path
            return [s.path for s in healthy + rest]
        # aggregate: the next healthy path in turn, then the others as fallbacks
        if healthy:
            key = paths
            turn = self.turns.get(key, -1) + 1
            self.turns[key] = turn
            k = turn % len(healthy)
            healthy = healthy[k:] + healthy[:k]
        return [s.path for s in healthy + rest]

    def is_mesh_node(self, name: str) -> bool:
        """Whether client ``name`` answered our node-info request (a node of this project),
        so it understands relay requests with a visited list."""
        ids = self.nested.ids if self.nested is not None else {}
        return bool(ids.get(name, (None, ""))[1])

    def relay_address(self, path: str, address: str, visited=()) -> tuple[str, str]:
        """(first hop, what to ask it for) to reach ``address`` along ``path``.  A one-hop
        path asks for the plain target (any Hysteria 2 server can be an exit), unless this
        stream came along a path (``visited``) and the hop is a mesh node: then the ids go
        on, so routes of several nodes that lead back into each other are refused where they
        loop instead of relaying in a circle."""
        parts = hops(path)
        seen = tuple(visited) + (self.node_id,)
        if len(parts) == 1:
            if visited and self.is_mesh_node(parts[0]):
                return parts[0], wire.encode_via((), address, seen)
            return parts[0], address
        return parts[0], wire.encode_via(parts[1:], address, seen)

    def udp_address(self, path: str) -> tuple[str, str | None]:
        """(first hop, relay address) of a UDP relay along ``path``; None: one hop, the
        first hop's own Hysteria 2 UDP session carries it."""
        parts = hops(path)
        if len(parts) == 1:
            return parts[0], None
        return parts[0], wire.encode_udp_via(parts[1:], (self.node_id,))

    async def _each(self, route, opener):
        errors = []
        for path in self.candidates(route):
            st = self.state(path)
            try:
                result = await opener(path)
            except ExitUnavailable as exc:
                st.failed(str(exc))
                errors.append(str(exc) if len(route[0]) == 1 else f"path {path}: {exc}")
                continue
            st.opened += 1
            return path, result
        raise ExitUnavailable("; ".join(errors) or "no exit path")

    async def open_stream(self, route, pump, address: str, loop, visited=()) -> str:
        """Open ``address`` along the route and connect the server's relay ``pump`` to it;
        the path used.  ``ExitUnavailable`` with the reasons when no path could.
        ``visited``: the node ids of the path this stream came along, if it did."""
        async def opener(path):
            first, ask = self.relay_address(path, address, visited)
            await self.peers.open_stream(first, pump, ask, loop)
        path, _ = await self._each(route, opener)
        return path

    async def open_socket(self, route, address: str, loop):
        """Like ``open_stream`` for a caller with its own protocol (the proxy inbounds): a
        connected socket whose other end is the stream at the exit."""
        async def opener(path):
            first, ask = self.relay_address(path, address)
            return await self.peers.peer(first).open_socket(ask, loop)
        _path, sock = await self._each(route, opener)
        return sock

    async def open_udp(self, route):
        """A UDP carrier along the route: ``("native", UdpSession)`` on a one-hop path, or
        ``("stream", (reader, writer))`` of a framed relay stream (``wire``)."""
        async def opener(path):
            first, ask = self.udp_address(path)
            client = await self.peers.peer(first).connection()
            try:
                if ask is None:
                    return "native", await client.udp_session()
                return "stream", await client.open_tcp(ask)
            except ExitUnavailable:
                raise
            except Exception as exc:           # Hy2Error, ConnectError, OSError
                raise ExitUnavailable(f"exit {first}: {exc}") from None
        _path, carrier = await self._each(route, opener)
        return carrier

    # -- probing ------------------------------------------------------------------------------
    async def probe(self, path: str) -> None:
        st = self.state(path)
        st.probes += 1
        parts = hops(path)
        ask = wire.PING if len(parts) == 1 else wire.encode_via(parts[1:], wire.PING, (self.node_id,))
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                client = await self.peers.peer(parts[0]).connection()
                reader, writer = await client.open_tcp(ask)
                got = await reader.read(1)
                writer.close()
            if got != b"\x01":
                raise ExitUnavailable("the path's end did not answer the ping")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            st.failed(str(exc) or type(exc).__name__)
            return
        sample = (time.monotonic() - t0) * 1000
        # Smoothed like TCP's SRTT: one slow probe on a busy machine does not reorder paths.
        st.latency_ms = round(sample if st.latency_ms is None or not st.healthy(time.monotonic())
                              else st.latency_ms + LATENCY_WEIGHT * (sample - st.latency_ms), 2)
        st.ok_at = time.monotonic()
        st.error = ""

    async def probe_all(self) -> None:
        wanted = self.probed_paths()
        for p in list(self.paths):
            if p not in wanted and self.paths[p].opened == 0:
                del self.paths[p]
        if wanted:
            await asyncio.gather(*(self.probe(p) for p in sorted(wanted)), return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                self.reload()               # a missed rules_changed only delays a change
                await self.probe_all()
            except Exception:
                log.exception("path probes failed")
            await asyncio.sleep(PROBE_SECONDS)

    def status(self) -> dict:
        now = time.monotonic()
        return {"node_id": self.node_id, "rules": self.rules.count,
                "paths": {p: s.view(now) for p, s in sorted(self.paths.items())}}

    async def start(self) -> "MeshEgress":
        from fastpath.mesh.nested import NestedDiscovery
        self.nested = NestedDiscovery(self.store, self.peers, lambda: self.node_id, self.node_name)
        self.nested.start()
        self._task = asyncio.ensure_future(self._run())
        return self

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.nested is not None:
            self.nested.close()


def target_host(address: str) -> str:
    try:
        return split_address(address)[0]
    except ValueError:
        return ""
