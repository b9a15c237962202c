"""The receiving side of relay requests (``fastpath.mesh.wire``) on this node's Hysteria 2
server.  The request arrived on a proxy stream of an authenticated user (the previous node's
peer user here), whose relay pump counts every byte for that user, as for any stream.

- via with a path: checked (this node must not be in ``visited``), then opened on this node's
  client named first, asking it for the rest (``ExitPeers.open_stream``), hop by hop.
- via with an empty path: the target, for the server's ordinary dial (``serve`` returns it).
- UDP via with an empty path: this node's ``UdpExit`` sends the datagrams.
- ping / list peers / node info: answered here (an identified node-info request also notes
  the asker as an inbound peer, ``fastpath.mesh.inbound``).
- the remote-UI tunnel (``_relay_api_:0``, alone or at a path's end): one HTTP exchange with
  this node's control listener, through the gateway of ``fastpath.mesh.api_relay``.

Local answers use a Unix socket pair, as the exits do: the pump keeps its socket transport
(its counting and back-pressure live there) and the other end is written by this module.
"""
from __future__ import annotations

import asyncio
import json
import socket

from fastpath.hy2.client.exit_peers import ExitUnavailable
from fastpath.mesh import api_relay, wire
from fastpath.mesh.udp import UdpExit


async def _local(pump, loop, protocol=None, data: bytes = b""):
    """Connect ``pump`` to one end of a socket pair; the other end gets ``protocol`` or
    ``data`` and an end of stream."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        await loop.create_connection(lambda: pump, sock=a)
    except BaseException:
        a.close()
        b.close()
        raise
    if protocol is not None:
        await loop.create_connection(lambda: protocol, sock=b)
        return
    transport, _ = await loop.create_connection(asyncio.Protocol, sock=b)
    transport.write(data)
    transport.write_eof()
    transport.close()


_tunnels: set = set()      # the running remote-UI exchanges (a task needs a strong reference)


async def _local_api(pump, loop, control) -> None:
    """Connect ``pump`` to a socket pair whose other end the remote-UI gateway serves."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        await loop.create_connection(lambda: pump, sock=a)
        reader, writer = await asyncio.open_connection(sock=b, limit=api_relay.MAX_HEAD)
    except BaseException:
        a.close()
        b.close()
        raise
    task = asyncio.ensure_future(api_relay.serve(reader, writer, control))
    _tunnels.add(task)
    task.add_done_callback(_tunnels.discard)


async def serve(mesh, pump, address: str, loop, conn=None) -> tuple[str, tuple[str, ...]] | None:
    """Serve the relay request ``address``; ``(target, visited)`` when the server is to open
    the target itself (dialed, or along this node's own route for it, which then carries
    ``visited`` on), None when served here.  ``OSError`` with the message for the user
    otherwise.  ``conn``: the server connection the request came on (an identified
    node-info request marks it as an inbound peer's)."""
    try:
        via = wire.parse(address)
    except wire.RelayError as exc:
        raise OSError(str(exc)) from None
    if mesh is None:
        raise OSError("this node does not relay (no outbound peers in this worker)")
    if via.target == wire.PING and not via.path and not via.visited:
        await _local(pump, loop, data=b"\x01")
        return None
    if via.target == wire.API and not via.path and not via.visited:
        await _local_api(pump, loop, mesh.control_addr)
        return None
    if via.target == wire.LIST_PEERS and not via.path:
        await _local(pump, loop, data=peer_list_json(mesh.peer_list()))
        return None
    if via.target == wire.NODE_INFO:
        if via.asker is not None and via.asker[0] != mesh.node_id:
            mesh.inbound.note(conn, {"node_id": via.asker[0], "name": via.asker[1]})
        await _local(pump, loop, data=peer_list_json({"node_id": mesh.node_id, "name": mesh.node_name()}))
        return None
    me = mesh.node_id
    if me in via.visited:
        raise OSError(f"exit path revisits node {me}; refused")
    visited = via.visited + (me,)
    if via.path:
        first, rest = via.path[0], via.path[1:]
        ask = wire.encode_udp_via(rest, visited) if via.udp else wire.encode_via(rest, via.target, visited)
        try:
            await mesh.peers.open_stream(first, pump, ask, loop)
        except ExitUnavailable as exc:
            raise OSError(str(exc)) from None
        return None
    if via.udp:
        await _local(pump, loop, protocol=UdpExit(loop))
        return None
    if via.target == wire.PING:
        await _local(pump, loop, data=b"\x01")
        return None
    if via.target == wire.API:
        await _local_api(pump, loop, mesh.control_addr)
        return None
    if via.target.startswith(wire.RELAY_PREFIX):
        raise OSError(f"relay target {via.target[:60]!r} is not served")
    return via.target, visited


def peer_list_json(entries) -> bytes:
    return json.dumps(entries, separators=(",", ":")).encode()
