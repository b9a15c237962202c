"""A client that moves to a new connection ID as soon as the server announces one (quic-go does
so right after the handshake) must find it routed: the server registers the IDs it sends in
NEW_CONNECTION_ID when it sends them, not at its next event pass, which comes after the
lookup of the client's next datagram (and that lookup answered with a stateless reset)."""
from __future__ import annotations

import asyncio

from fastpath.hy2.client.client import ClientConnection, simple_client
from fastpath.hy2.server.server import ServerConnection
from fastpath.worker.event_loop import run
from tests.hy2.inprocess import password_server
from tests.hy2.targets import echo_handler


def test_a_client_switching_connection_id_at_once_is_routed_not_reset(tls_files, monkeypatch):
    switched = []
    original = ClientConnection.process_events

    def process_events(self, now):
        # Before the answer to the packet that carried NEW_CONNECTION_ID goes out.
        quic = self.quic
        if not switched and quic._handshake_complete and quic._peer_cid_available:
            quic.change_connection_id()
            switched.append(quic._peer_cid.cid)
        original(self, now)

    monkeypatch.setattr(ClientConnection, "process_events", process_events)

    # The invariant itself, checked the moment each transmit returns (before any datagram the
    # client sends in answer can be read): every ID aioquic has announced is routed.
    unrouted = []
    announced = []
    transmit = ServerConnection.transmit

    def checked_transmit(self):
        transmit(self)
        sent = [c.cid for c in self.quic._host_cids if c.was_sent]
        announced.extend(sent)
        unrouted.extend(c for c in sent if self.server.by_cid.get(c) is not self)

    monkeypatch.setattr(ServerConnection, "transmit", checked_transmit)

    async def main():
        echo = await asyncio.start_server(echo_handler, "127.0.0.1", 0)
        server = await password_server(tls_files)
        client = simple_client(f"127.0.0.1:{server.address[1]}", "pw")
        try:
            conn = await asyncio.wait_for(client.connect(), 10)
            reader, writer = await client.open_tcp(f"127.0.0.1:{echo.sockets[0].getsockname()[1]}")
            writer.write(b"ping" * 1000)
            assert await asyncio.wait_for(reader.readexactly(4000), 10) == b"ping" * 1000
            writer.close()
            assert switched, "the client never had a second connection ID to move to"
            assert conn.quic._peer_cid.cid == switched[0]
            assert not conn.closed
            assert server.by_cid.get(switched[0]) is not None
            assert len(set(announced)) > 1
            assert unrouted == []
        finally:
            await client.close()
            await server.close()
            echo.close()

    run(main())
