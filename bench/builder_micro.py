"""Issue 12, lever 2a: the packet builder alone, fastpath's compiled one vs aioquic's.

What ``datagrams_to_send`` asks of a builder at data rate, without the rest of the connection:
per call a fresh builder, then 1-RTT packets of one ACK-sized frame and one STREAM frame that
fills the packet, each frame with a delivery handler, then ``flush``.  Rounds alternate the two
builders; prints CPU microseconds per packet for each round and the ratio of the medians.

    python bench/builder_micro.py [--rounds 7] [--packets 20000]
    python bench/builder_micro.py --connection [--rounds 5] [--mib 16]

``--connection``: a real aioquic server connection in memory (no sockets) sends stream data to
a client; the server's CPU per packet sent (datagrams_to_send plus handling the ACKs) with each
builder installed.  The client's CPU is not counted.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aioquic.quic.crypto import CryptoPair  # noqa: E402
from aioquic.quic.packet import QuicFrameType, QuicPacketType  # noqa: E402
from aioquic.quic.packet_builder import QuicPacketBuilder as AioquicBuilder  # noqa: E402
from aioquic.quic.packet_builder import QuicPacketBuilderStop  # noqa: E402
from aioquic.tls import CipherSuite  # noqa: E402

from fastpath.hy2.quic.quic_builder import QuicPacketBuilder as OurBuilder  # noqa: E402

PAYLOAD = bytes(1400)


def on_delivery(*args):
    pass


def crypto_pair() -> CryptoPair:
    pair = CryptoPair()
    pair.send.setup(cipher_suite=CipherSuite.AES_128_GCM_SHA256, secret=bytes(range(32)),
                    version=1)
    pair.recv.setup(cipher_suite=CipherSuite.AES_128_GCM_SHA256, secret=bytes(32), version=1)
    return pair


def run(cls, pair: CryptoPair, packets: int, per_call: int = 16) -> float:
    """CPU seconds per packet."""
    sent = 0
    pn = 0
    start = time.process_time()   # CPU time: the machine is shared
    while sent < packets:
        builder = cls(host_cid=bytes(8), peer_cid=bytes(8), version=1, is_client=False,
                      max_datagram_size=1252, packet_number=pn)
        builder.max_flight_bytes = 1 << 20
        try:
            for _ in range(per_call):
                builder.start_packet(QuicPacketType.ONE_RTT, pair)
                buf = builder.start_frame(QuicFrameType.ACK, capacity=16)
                buf.push_bytes(bytes(6))
                room = builder.remaining_flight_space - 8
                buf = builder.start_frame(QuicFrameType.STREAM_BASE | 6, capacity=room,
                                          handler=on_delivery, handler_args=(0, pn))
                buf.push_uint_var(4)
                buf.push_uint_var(pn * 1200)
                buf.push_uint16((room - 12) | 0x4000)
                buf.push_bytes(PAYLOAD[:room - 12])
        except QuicPacketBuilderStop:
            pass
        datagrams, records = builder.flush()
        sent += len(records)
        pn = builder.packet_number
    return (time.process_time() - start) / sent


def connection_pair(cert: str, key: str):
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection
    client = QuicConnection(configuration=QuicConfiguration(
        is_client=True, alpn_protocols=["h3"], verify_mode=0, max_data=64 << 20,
        max_stream_data=64 << 20))
    cfg = QuicConfiguration(is_client=False, alpn_protocols=["h3"])
    cfg.load_cert_chain(cert, key)
    server = QuicConnection(configuration=cfg, original_destination_connection_id=(
        client.original_destination_connection_id))
    return client, server


def handshake(client, server, now: float) -> None:
    """Connects ``client`` and moves datagrams both ways in memory until neither end has
    anything to send: the handshake is then done at both."""
    client.connect(("10.0.0.1", 1), now)
    for _ in range(50):
        moved = 0
        for src, dst, addr in ((client, server, ("10.0.0.2", 2)),
                               (server, client, ("10.0.0.1", 1))):
            for data, _addr in src.datagrams_to_send(now):
                dst.receive_datagram(data, addr, now)
                moved += 1
        if not moved:
            break
    assert server._handshake_complete and client._handshake_complete


def connection_send_cost(choice: str, cert: str, key: str, total: int) -> tuple[float, int]:
    """A whole aioquic server connection in memory sending ``total`` stream bytes to a client:
    the server's CPU per packet sent (its datagrams_to_send plus handling the client's ACKs),
    with the builder ``choice`` installed.  The client's work is not counted."""
    from fastpath.hy2.quic import aioquic_seam
    aioquic_seam.install(choice)
    client, server = connection_pair(cert, key)
    now = 1.0
    handshake(client, server, now)
    sid = server.get_next_available_stream_id()
    server.send_stream_data(sid, b"")
    chunk = bytes(65536)
    server_cpu = 0.0
    packets = 0
    queued = 0
    while queued < total or server._streams[sid].sender.buffer_is_empty is False:
        now += 0.001
        t0 = time.process_time()
        if queued < total and server._streams[sid].sender._buffer_stop - \
                server._streams[sid].sender._buffer_start < (1 << 20):
            server.send_stream_data(sid, chunk)
            queued += len(chunk)
        out = server.datagrams_to_send(now)
        server_cpu += time.process_time() - t0
        packets += len(out)
        for data, _addr in out:
            client.receive_datagram(data, ("10.0.0.1", 1), now)
        acks = client.datagrams_to_send(now)
        while client.next_event() is not None:
            pass
        t0 = time.process_time()
        for data, _addr in acks:
            server.receive_datagram(data, ("10.0.0.2", 2), now)
        while server.next_event() is not None:
            pass
        server_cpu += time.process_time() - t0
        if not out and queued >= total:
            break
    return server_cpu / max(packets, 1), packets


def main_connection(args) -> None:
    from fastpath.supervisor.bootstrap import ensure_certificate
    import tempfile
    cert, key = map(str, ensure_certificate(Path(tempfile.mkdtemp())))
    results = {"aioquic": [], "fastpath": []}
    for i in range(args.rounds):
        order = ["fastpath", "aioquic"] if i % 2 == 0 else ["aioquic", "fastpath"]
        if args.only:
            print(args.only, connection_send_cost(args.only, cert, key, args.mib << 20))
            continue
        for choice in order:
            per_packet, packets = connection_send_cost(choice, cert, key, args.mib << 20)
            results[choice].append(per_packet * 1e6)
        print(f"round {i + 1}: server CPU per packet sent: fastpath "
              f"{results['fastpath'][-1]:.2f} us, aioquic {results['aioquic'][-1]:.2f} us, "
              f"aioquic/fastpath {results['aioquic'][-1] / results['fastpath'][-1]:.2f}x "
              f"({packets} packets)", flush=True)
    if not args.only:
        a, f = statistics.median(results["aioquic"]), statistics.median(results["fastpath"])
        print(f"median: fastpath {f:.2f} us/packet, aioquic {a:.2f} us/packet, "
              f"aioquic/fastpath {a / f:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--packets", type=int, default=20000)
    ap.add_argument("--connection", action="store_true",
                    help="a whole aioquic connection pair in memory instead of the builder alone")
    ap.add_argument("--mib", type=int, default=16)
    ap.add_argument("--only", choices=["fastpath", "aioquic"],
                    help="--connection with one builder only (to profile it)")
    args = ap.parse_args()
    if args.connection:
        return main_connection(args)
    results = {"aioquic": [], "fastpath": []}
    pair = crypto_pair()
    for name, cls in (("aioquic", AioquicBuilder), ("fastpath", OurBuilder)):
        run(cls, pair, 2000)  # warm-up
    for i in range(args.rounds):
        order = [("fastpath", OurBuilder), ("aioquic", AioquicBuilder)]
        if i % 2:
            order.reverse()
        for name, cls in order:
            results[name].append(run(cls, pair, args.packets) * 1e6)
        print(f"round {i + 1}: fastpath {results['fastpath'][-1]:.2f} us/packet, "
              f"aioquic {results['aioquic'][-1]:.2f} us/packet, "
              f"ratio {results['aioquic'][-1] / results['fastpath'][-1]:.2f}x", flush=True)
    a, f = statistics.median(results["aioquic"]), statistics.median(results["fastpath"])
    print(f"median: fastpath {f:.2f} us/packet, aioquic {a:.2f} us/packet, "
          f"aioquic/fastpath {a / f:.2f}x")


if __name__ == "__main__":
    main()
