"""Inbound peers: the nodes that dial this one as its clients (they use it as their exit).

A peer node logs in as an ordinary user of this node, so the login alone cannot tell it from
a user's phone.  What does tell is the node-info request (``fastpath.mesh.wire``) every node
of this project sends each client it connects to, once per connection: in its identified
form (``_relay_node_info_<node id>/<name>:0``) it names the asker.  The worker that serves
that request notes the QUIC connection it came on (``InboundPeers.note``); the peer is
listed for as long as that connection is open, with the connection's own smoothed RTT as its
latency and the user it logged in as (whose counters carry its traffic).

The control plane asks every worker (``inbound_peers``) and shows the peers as this node's
``children`` in ``/topology`` and counts them in ``/stats`` ``exit_clients``, as the
reference does for the peers registered on its server side.  Reference nodes do not send the
identified request, so they are not listed (nothing is guessed).
"""
from __future__ import annotations

import weakref

from fastpath.hy2.quic import aioquic_seam

MAX_INBOUND = 4096          # noted connections kept per worker (a peer per connection)


class InboundPeers:
    """The identified peers on this worker's open connections."""

    def __init__(self) -> None:
        # id(connection) -> (weak reference to it, {"node_id", "name", "version"})
        self._seen: dict[int, tuple[weakref.ref, dict]] = {}

    def note(self, conn, info: dict) -> None:
        """``conn`` (a ``ServerConnection``) is a peer node's, as its request said."""
        if conn is None:
            return
        self._prune()
        if len(self._seen) >= MAX_INBOUND and id(conn) not in self._seen:
            return
        self._seen[id(conn)] = (weakref.ref(conn), dict(info))

    def _prune(self) -> None:
        for key, (ref, _info) in list(self._seen.items()):
            conn = ref()
            if conn is None or conn.closed:
                del self._seen[key]

    def listing(self) -> list[dict]:
        """One entry per open connection of an identified peer: its ids, the user it logged
        in as, and the connection's latency (ms, None before the first RTT sample)."""
        self._prune()
        out = []
        for ref, info in self._seen.values():
            conn = ref()
            if conn is None:
                continue
            out.append({**info, "user": conn.session.auth_id, "latency_ms": rtt_ms(conn),
                        "addr": conn.peer})
        return out


def rtt_ms(conn) -> float | None:
    return aioquic_seam.smoothed_rtt_ms(conn.quic)
