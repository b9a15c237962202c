"""Processes the Hysteria 2 benchmarks run: servers, targets and clients, one per process so each
side has its own core, as in real use.

    python bench/hy2_procs.py bare-server            # aioquic server: "N\\n" on a stream -> N bytes
    python bench/hy2_procs.py hy2-server PASSWORD    # our server (password auth)
    python bench/hy2_procs.py source                 # TCP: uint64 N -> N bytes
    python bench/hy2_procs.py echo                   # TCP + UDP echo
    python bench/hy2_procs.py sink                   # TCP: uint64 N, then N bytes -> b"done"
    python bench/hy2_procs.py bare-download PORT N   # bare aioquic client: prints seconds
    python bench/hy2_procs.py download ADDR AUTH TARGET N   # our client: prints seconds

Servers print their port(s) on the first line of stdout and run until killed.
"""
from __future__ import annotations

import asyncio
import os
import ssl
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastpath.worker.event_loop import run  # noqa: E402
from tests.hy2.targets import echo_handler as _echo  # noqa: E402

CHUNK = os.urandom(64 * 1024)


def _cert():
    from fastpath.supervisor.bootstrap import ensure_certificate
    return ensure_certificate(Path(tempfile.gettempdir()) / "fastpath-bench-tls")


async def bare_server():
    from aioquic.asyncio import QuicConnectionProtocol, serve
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.events import StreamDataReceived

    class Server(QuicConnectionProtocol):
        buffers: dict = {}

        def quic_event_received(self, event):
            if not isinstance(event, StreamDataReceived):
                return
            buf = self.buffers.setdefault(event.stream_id, bytearray())
            buf += event.data
            if b"\n" in buf:
                n = int(buf.split(b"\n")[0])
                del self.buffers[event.stream_id]
                asyncio.ensure_future(self.send(event.stream_id, n))

        async def send(self, sid, n):
            # Feed the stream as a TCP source would: a chunk at a time, with back-pressure.
            quic = self._quic
            while n:
                k = min(n, len(CHUNK))
                quic.send_stream_data(sid, CHUNK[:k])
                n -= k
                self.transmit()
                stream = quic._streams.get(sid)
                while stream is not None and stream.sender._buffer_stop - stream.sender._buffer_start > 4 << 20:
                    await asyncio.sleep(0.001)
            quic.send_stream_data(sid, b"", end_stream=True)
            self.transmit()

    cert, key = _cert()
    cfg = QuicConfiguration(is_client=False, alpn_protocols=["h3"], max_stream_data=8 << 20,
                            max_data=20 << 20, idle_timeout=30)
    cfg.load_cert_chain(cert, key)
    server = await serve("127.0.0.1", 0, configuration=cfg, create_protocol=Server)
    print(server._transport.get_extra_info("sockname")[1], flush=True)
    await asyncio.Event().wait()


async def bare_download(port: int, n: int) -> float:
    from aioquic.asyncio import QuicConnectionProtocol, connect
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.events import StreamDataReceived

    class Client(QuicConnectionProtocol):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.got = 0
            self.done = asyncio.get_running_loop().create_future()

        def quic_event_received(self, event):
            if isinstance(event, StreamDataReceived):
                self.got += len(event.data)
                if event.end_stream and not self.done.done():
                    self.done.set_result(None)

    cfg = QuicConfiguration(is_client=True, alpn_protocols=["h3"], verify_mode=ssl.CERT_NONE,
                            max_stream_data=8 << 20, max_data=20 << 20)
    async with connect("127.0.0.1", port, configuration=cfg, create_protocol=Client) as c:
        sid = c._quic.get_next_available_stream_id()
        start = time.perf_counter()
        c._quic.send_stream_data(sid, f"{n}\n".encode())
        c.transmit()
        await c.done
        elapsed = time.perf_counter() - start
        assert c.got == n, (c.got, n)
        return elapsed


async def hy2_server(password: str):
    from fastpath.hy2.server.auth_backends import NodeAuthenticator, PasswordAuth
    from fastpath.hy2.config import parse_server_config
    from fastpath.hy2.server.masquerade import NotFoundMasquerade
    from fastpath.hy2.server.server import Hy2Server
    cert, key = _cert()
    server = await Hy2Server(parse_server_config({"listen": "127.0.0.1:0"}), cert=str(cert),
                             key=str(key), authenticator=NodeAuthenticator(None, PasswordAuth(password)),
                             masquerade=NotFoundMasquerade()).start()
    print(server.address[1], flush=True)
    await asyncio.Event().wait()


async def _source(reader, writer):
    try:
        (n,) = struct.unpack(">Q", await reader.readexactly(8))
        while n:
            k = min(n, len(CHUNK))
            writer.write(CHUNK[:k])
            n -= k
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def _sink(reader, writer):
    """Reads a uint64 N, then N bytes, and answers ``done``: the end of an upload is the
    moment its last byte reached the target."""
    try:
        (n,) = struct.unpack(">Q", await reader.readexactly(8))
        while n:
            data = await reader.read(min(n, 1 << 20))
            if not data:
                return
            n -= len(data)
        writer.write(b"done")
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def sink():
    server = await asyncio.start_server(_sink, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


async def source():
    server = await asyncio.start_server(_source, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


async def echo():
    loop = asyncio.get_running_loop()

    class Udp(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.transport.sendto(data, addr)

    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    transport, _ = await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", 0))
    print(server.sockets[0].getsockname()[1], transport.get_extra_info("sockname")[1], flush=True)
    await asyncio.Event().wait()


async def proxy_download(server: str, auth: str, target: str, n: int) -> float:
    from fastpath.hy2.client.client import simple_client
    client = simple_client(server, auth)
    await asyncio.wait_for(client.ensure_connected(), 20)
    start = time.perf_counter()
    reader, writer = await client.open_tcp(target)
    writer.write(struct.pack(">Q", n))
    got = 0
    while data := await reader.read(1 << 20):
        got += len(data)
    elapsed = time.perf_counter() - start
    await client.close()
    assert got == n, (got, n)
    return elapsed


async def peer_nodes(server: str, auth: str, count: int):
    """``count`` Hysteria 2 connections to ``server``, each naming itself a peer node (the
    identified node-info request, ``fastpath.mesh.wire``), held open: the server lists them
    as inbound peers.  Prints ``ready`` when every one has been answered."""
    from fastpath.hy2.client.client import simple_client
    from fastpath.mesh.wire import encode_node_info
    clients = []
    for i in range(count):
        client = simple_client(server, auth)
        await asyncio.wait_for(client.ensure_connected(), 20)
        reader, writer = await client.open_tcp(encode_node_info(f"peer{i:04d}", f"peer node {i}"))
        assert await reader.read(4096)
        writer.close()
        clients.append(client)
    print("ready", flush=True)
    await asyncio.Event().wait()


def main(argv):
    cmd = argv[0]
    if cmd == "bare-server":
        run(bare_server())
    elif cmd == "hy2-server":
        run(hy2_server(argv[1]))
    elif cmd == "source":
        run(source())
    elif cmd == "echo":
        run(echo())
    elif cmd == "sink":
        run(sink())
    elif cmd == "bare-download":
        print(run(bare_download(int(argv[1]), int(argv[2]))), flush=True)
    elif cmd == "download":
        print(run(proxy_download(argv[1], argv[2], argv[3], int(argv[4]))), flush=True)
    elif cmd == "peer-nodes":
        run(peer_nodes(argv[1], argv[2], int(argv[3])))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv[1:])
