"""Issue 12, lever 2a: the packet builder alone, fastpath's compiled one vs aioquic's.

What ``datagrams_to_send`` asks of a builder at data rate, without the rest of the connection:
per call a fresh builder, then 1-RTT packets of one ACK-sized frame and one STREAM frame that
fills the packet, each frame with a delivery handler, then ``flush``.  Rounds alternate the two
builders; prints CPU microseconds per packet for each round and the ratio of the medians.

    python bench/builder_micro.py [--rounds 7] [--packets 20000]
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

from fastpath.hy2.quic_builder import QuicPacketBuilder as OurBuilder  # noqa: E402

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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--packets", type=int, default=20000)
    args = ap.parse_args()
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
