"""Where a user's traffic leaves the node: here (``direct``), or along an exit route.

The Hysteria 2 server gets one ``Egress`` in its constructor, as it gets its authenticator and
its counter sink, and the proxy inbounds get the same one from the worker context, so a user's
route can be followed by reading: the caller asks ``exit_of(user, host)`` for the route
(``(paths, mode)``: a rule's for that host, or the user's own exit; None: it leaves here),
then either dials ``direct`` or opens the stream (``open_stream`` / ``open_socket``) or the
UDP session (``udp``) along that route.

This base class is the egress of a worker without outbound peers: everything leaves here,
and a route (which it never gives) would fail closed.  The worker builds the mesh's
(``fastpath.mesh.egress.MeshEgress``: exit paths, rules, quality / aggregate modes, nested
discovery) over its outbound peers (``fastpath.hy2.client.exit_peers``) and its user directory.
"""
from __future__ import annotations

NO_PEERS = "this worker has no outbound peers; not dialing directly"


class Egress:
    def exit_of(self, user_id, host: str = "", via=None):
        """The route (``(paths, mode)``) of a stream of ``user_id`` to ``host``; None: it
        leaves here.  ``via``: the exit of the listener the stream came in on (a HY2 SCALE
        proxy's ``exit_via`` path, or its ``(paths, mode)`` route), which goes before the
        user's own; a rule for ``host`` goes before both."""
        return as_route(via)

    async def direct(self, loop, protocol_factory, host: str, port: int):
        """Dial the target from this node."""
        return await loop.create_connection(protocol_factory, host, port)

    async def open_stream(self, route, pump, address: str, loop, visited=()) -> str:
        """Open ``address`` along ``route`` and relay ``pump`` through it; fails closed (an
        exit-routed stream is never dialed from here)."""
        raise OSError(NO_PEERS)

    async def open_socket(self, route, address: str, loop):
        """Like ``open_stream`` for a caller with its own protocol (the proxy inbounds): a
        connected socket whose other end is the stream at the exit."""
        raise OSError(NO_PEERS)

    async def open_udp(self, route):
        """A UDP carrier along ``route`` (``fastpath.mesh.udp.MeshUdp`` opens it)."""
        from fastpath.hy2.client.exit_peers import ExitUnavailable
        raise ExitUnavailable(NO_PEERS)

    def udp(self, loop, owner, session_id: int, route, counters, slot: int):
        """The relay of one UDP session along ``route`` (its packets are dropped, never sent
        from here, while no path can carry them)."""
        from fastpath.mesh.udp import MeshUdp
        return MeshUdp(loop, owner, session_id, self, route, counters, slot)

    async def serve_relay(self, pump, address: str, loop, conn=None):
        """A relay request of the mesh (``fastpath.mesh.relay``) that reached this node on
        the server connection ``conn``: served here (None), or (target, visited ids) to open
        from here.  Without a mesh the request is refused."""
        from fastpath.mesh.relay import serve
        return await serve(None, pump, address, loop, conn)


def as_route(via):
    """A listener's exit as a route: a path ``"b/c"`` is ``(("b/c",), "")``; a route is
    itself; nothing is None."""
    if not via:
        return None
    return ((via,), "") if isinstance(via, str) else via


DIRECT = Egress()
