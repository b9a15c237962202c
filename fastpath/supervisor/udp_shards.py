"""One Hysteria 2 UDP socket per worker, owned by the supervisor for the node's lifetime.

Workers share the Hysteria 2 port with ``SO_REUSEPORT``: the kernel picks a socket of the group
for each flow from a hash of its addresses, modulo the number of sockets in the group.  If each
worker bound its own socket, a worker that dies would leave the group (and its restart would
join it again), and the modulo would move the flows of *every* worker: the connections of the
workers that never failed would start landing on a process that does not know them.

So the supervisor binds the group once, one socket per shard, and hands socket *i* to worker *i*
(an inherited file descriptor, ``--hy2-fd``).  A worker that dies leaves its socket in the group
(the supervisor still holds it; datagrams wait in its buffer), the restarted worker takes the
same socket, and no other worker's flows move.  The connections the dead worker held are ended
for their clients by stateless resets (``fastpath.hy2.quic.stateless_reset``).
"""
from __future__ import annotations

import socket

from fastpath.hy2.quic.udp_endpoint import make_udp_socket


def open_shard_sockets(config) -> list[socket.socket]:
    """The bound sockets, in shard order ([] when the node runs no Hysteria 2 listener)."""
    settings = config.sections.get("hysteria")
    listen = getattr(settings, "listen", None)
    if not listen:
        return []
    host, port = listen
    sockets: list[socket.socket] = []
    try:
        for _ in range(config.workers):
            sock = make_udp_socket(host, port, reuse_port=True)
            # Port 0 asks for any port: the rest of the group must join the one the first got.
            port = sock.getsockname()[1]
            sockets.append(sock)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets
