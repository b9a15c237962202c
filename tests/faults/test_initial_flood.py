"""A flood of well-formed QUIC Initials: bounded work, bounded memory, service goes on.

2000 Initials (real ClientHellos from aioquic client connections, random connection IDs) hit
the Hysteria 2 port while a real client keeps echoing through the node.  The worker admits a
budget of half-open connections and answers the rest with Retry; the client's round trips stay
fast and the worker's memory stays put.  Version negotiation is never sent for a datagram
under 1200 bytes.
"""
from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest
from aioquic.buffer import Buffer
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicPacketType, pull_quic_header

from fastpath.hy2.client.client import simple_client
from fastpath.worker.event_loop import run
from tests.hy2.conftest import default_secret
from tests.support.node import NodeProcess, free_tcp_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FLOOD = 2000
LATENCY_LIMIT = 0.200
RSS_GROWTH_LIMIT = 20 << 20


def client_initials(n: int, server: tuple[str, int]) -> list[bytes]:
    """n first datagrams of real QUIC clients, each with its own connection IDs."""
    out = []
    cfg = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name="localhost")
    for _ in range(n):
        quic = QuicConnection(configuration=cfg)
        quic.connect(server, now=time.monotonic())
        out.append(quic.datagrams_to_send(now=time.monotonic())[0][0])
    return out


def worker_pid(node) -> int:
    return next(c["pid"] for c in node.get("/api/v1/node").json()["children"] if c["shard"] == 0)


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_an_initial_flood_is_bounded_and_the_node_keeps_serving(tmp_path, targets):
    with NodeProcess(tmp_path, {}) as node:
        host, port = node.config["listen"].rsplit(":", 1)
        server = (host, int(port))
        initials = client_initials(FLOOD, server)
        secret = default_secret(node.data_dir)
        pid = worker_pid(node)
        latencies, answers, before, after = run(_scenario(node, secret, server, initials, pid, targets.echo))
        # Most of the flood met Retry, not a handshake.
        retries = sum(1 for d in answers if _packet_type(d) == QuicPacketType.RETRY)
        print(f"FIGURES retries={retries} max_rtt={max(latencies)*1000:.0f}ms n={len(latencies)} rss_growth={(after-before)/1e6:.1f}MB")
        assert retries >= FLOOD // 2, f"{retries} Retry packets for {FLOOD} Initials"
        assert max(latencies) < LATENCY_LIMIT, f"round trips up to {max(latencies) * 1000:.0f} ms"
        assert after - before < RSS_GROWTH_LIMIT, f"RSS grew {(after - before) >> 20} MB"


def _packet_type(data: bytes):
    try:
        return pull_quic_header(Buffer(data=data), host_cid_length=8).packet_type
    except ValueError:
        return None


async def _scenario(node, secret, server, initials, pid, echo_port):
    client = simple_client(node.config["listen"], secret)
    await asyncio.wait_for(client.ensure_connected(), 15)
    reader, writer = await client.open_tcp(f"127.0.0.1:{echo_port}")
    latencies: list[float] = []
    flooding = asyncio.Event()
    done = asyncio.Event()

    async def echo_loop():
        while not done.is_set():
            t0 = time.monotonic()
            writer.write(b"ping")
            assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
            if flooding.is_set():
                latencies.append(time.monotonic() - t0)
            await asyncio.sleep(0.005)

    pinger = asyncio.ensure_future(echo_loop())
    await asyncio.sleep(0.3)
    before = rss(pid)
    flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flood.setblocking(False)
    flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    answers: list[bytes] = []

    def drain():
        while True:
            try:
                answers.append(flood.recv(2048))
            except BlockingIOError:
                return

    flooding.set()
    for i in range(0, len(initials), 50):
        for datagram in initials[i:i + 50]:
            flood.sendto(datagram, server)
        drain()
        await asyncio.sleep(0.01)
    await asyncio.sleep(1.0)
    drain()
    after = rss(pid)
    done.set()
    await pinger
    writer.close()
    await client.close()
    flood.close()
    return latencies, answers, before, after


def test_no_version_negotiation_for_a_datagram_under_1200_bytes(tmp_path):
    with NodeProcess(tmp_path, {}) as node:
        host, port = node.config["listen"].rsplit(":", 1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(1.0)
        # A long header with an unknown version (0x1a2a3a4a), DCID and SCID of 8 bytes.
        head = bytes([0xC0]) + bytes.fromhex("1a2a3a4a") + b"\x08" + os.urandom(8) + b"\x08" + os.urandom(8)
        sock.sendto(head + bytes(600 - len(head)), (host, int(port)))
        with pytest.raises(socket.timeout):
            sock.recv(2048)
        sock.sendto(head + bytes(1200 - len(head)), (host, int(port)))
        answer = sock.recv(2048)           # a full-size one is answered
        assert _packet_type(answer) == QuicPacketType.VERSION_NEGOTIATION
        sock.close()


def test_clients_that_must_validate_their_address_still_connect(tmp_path, targets):
    """``quic.maxHalfOpen: 0``: every connection goes through Retry first.  Our client (aioquic
    follows the Retry) and the reference client both connect and move bytes."""
    from tests.hy2.test_stock_client import StockClient, client_config

    with NodeProcess(tmp_path, {"quic": {"maxHalfOpen": 0}}) as node:
        secret = default_secret(node.data_dir)

        async def ours():
            client = simple_client(node.config["listen"], secret)
            await asyncio.wait_for(client.ensure_connected(), 15)
            reader, writer = await client.open_tcp(f"127.0.0.1:{targets.echo}")
            writer.write(b"validated")
            assert await asyncio.wait_for(reader.readexactly(9), 5) == b"validated"
            writer.close()
            await client.close()

        run(ours())
        node.secret = secret
        port = free_tcp_port()
        config = client_config(node, tcpForwarding=[{"listen": f"127.0.0.1:{port}",
                                                     "remote": f"127.0.0.1:{targets.echo}"}])
        with StockClient(tmp_path, config) as stock:
            stock.wait_log("connected to server")
            stock.wait_log("TCP forwarding listening")
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(b"reference")
                assert s.recv(9) == b"reference"
