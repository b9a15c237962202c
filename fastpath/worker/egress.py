"""Where a user's traffic leaves the node: here (``direct``), or through an exit peer.

The Hysteria 2 server gets one ``Egress`` in its constructor, as it gets its authenticator and
its counter sink, so a user's route can be followed by reading: the server asks
``exit_of(user)``, then either dials ``direct`` or opens the stream (``open_stream``) or the
UDP session (``udp``) on that peer.  The worker builds it from its user directory (who exits
where, reloaded with the users) and its outbound peers (``fastpath.hy2.exit_peers``).
"""
from __future__ import annotations

from typing import Callable


def _nowhere(_user_id) -> None:
    return None


class Egress:
    def __init__(self, exit_of: Callable[[str], str | None] = _nowhere, peers=None):
        self._exit_of = exit_of
        self.peers = peers          # fastpath.hy2.exit_peers.ExitPeers, or None (no exits here)

    def exit_of(self, user_id) -> str | None:
        """The peer ``user_id``'s traffic leaves through; None: it leaves here."""
        return self._exit_of(user_id) if user_id is not None else None

    async def direct(self, loop, protocol_factory, host: str, port: int):
        """Dial the target from this node."""
        return await loop.create_connection(protocol_factory, host, port)

    async def open_stream(self, exit_name: str, pump, address: str, loop) -> None:
        """Open ``address`` on the exit peer and relay ``pump`` through it; fails closed (an
        exit-routed user is never dialed from here)."""
        if self.peers is None:
            raise OSError(f"exit {exit_name!r}: this worker has no outbound peers; not dialing directly")
        await self.peers.open_stream(exit_name, pump, address, loop)

    def udp(self, loop, owner, session_id: int, exit_name: str, counters, slot: int):
        """The relay of one UDP session through the exit peer (its packets are dropped, never
        sent from here, while the peer cannot be reached)."""
        from fastpath.hy2.exit_peers import ExitUdp
        return ExitUdp(loop, owner, session_id, self.peers, exit_name, counters, slot)


DIRECT = Egress()
