"""Issue 12, levers 2b/3: the compiled receive path and recovery against aioquic's, in memory.

A real aioquic connection pair (no sockets), fastpath's packet builder installed in both arms;
rounds alternate fastpath's recovery + ACK path + 1-RTT receive path ("fastpath") with aioquic's
("aioquic").  Two measures of the server's CPU (``time.process_time`` around its calls only):

- download: the server sends ``--mib`` of stream data; CPU per packet sent, including handling
  the client's ACKs (recovery, ACK parsing, the receive path of ACK-only packets);
- upload: the client sends; the server's CPU per packet received (decrypt, frames, stream
  receive, ACK bookkeeping) plus the ACKs it sends back.

    python bench/recovery_micro.py [--rounds 5] [--mib 16]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from builder_micro import connection_pair, handshake  # noqa: E402


def install(choice: str) -> None:
    from fastpath.hy2.quic import aioquic_seam
    aioquic_seam.install("fastpath")
    aioquic_seam.install_recovery(choice)
    aioquic_seam.install_receive(choice)


def connected(cert, key):
    client, server = connection_pair(cert, key)
    now = 1.0
    handshake(client, server, now)
    return client, server, now


def cost(choice: str, cert: str, key: str, total: int, upload: bool) -> tuple[float, int]:
    """Server CPU seconds per packet (sent for a download, received for an upload)."""
    install(choice)
    client, server, now = connected(cert, key)
    sender, receiver = (client, server) if upload else (server, client)
    sid = sender.get_next_available_stream_id()
    sender.send_stream_data(sid, b"")
    chunk = bytes(65536)
    cpu = 0.0
    packets = 0
    queued = 0
    s_addr, r_addr = (("10.0.0.2", 2), ("10.0.0.1", 1)) if upload else \
        (("10.0.0.1", 1), ("10.0.0.2", 2))
    while True:
        now += 0.001
        stream = sender._streams[sid].sender
        t0 = time.process_time()
        if queued < total and stream._buffer_stop - stream._buffer_start < (1 << 20):
            sender.send_stream_data(sid, chunk)
            queued += len(chunk)
        out = sender.datagrams_to_send(now)
        t1 = time.process_time()
        if not upload:
            cpu += t1 - t0
            packets += len(out)
        for data, _addr in out:
            receiver.receive_datagram(data, s_addr, now)
        while receiver.next_event() is not None:
            pass
        acks = receiver.datagrams_to_send(now)
        t2 = time.process_time()
        if upload:
            cpu += t2 - t1
            packets += len(out)
        for data, _addr in acks:
            sender.receive_datagram(data, r_addr, now)
        while sender.next_event() is not None:
            pass
        t3 = time.process_time()
        if not upload:
            cpu += t3 - t2
        if not out and queued >= total:
            break
    return cpu / max(packets, 1), packets


def main() -> None:
    from fastpath.supervisor.bootstrap import ensure_certificate
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mib", type=int, default=16)
    args = ap.parse_args()
    cert, key = map(str, ensure_certificate(Path(tempfile.mkdtemp())))
    for upload in (False, True):
        name = "upload (server receives)" if upload else "download (server sends)"
        results = {"aioquic": [], "fastpath": []}
        for i in range(args.rounds):
            order = ["fastpath", "aioquic"] if i % 2 == 0 else ["aioquic", "fastpath"]
            for choice in order:
                per_packet, packets = cost(choice, cert, key, args.mib << 20, upload)
                results[choice].append(per_packet * 1e6)
            print(f"{name} round {i + 1}: server CPU per packet: fastpath "
                  f"{results['fastpath'][-1]:.2f} us, aioquic {results['aioquic'][-1]:.2f} us "
                  f"({packets} packets)", flush=True)
        a, f = statistics.median(results["aioquic"]), statistics.median(results["fastpath"])
        print(f"{name} median: fastpath {f:.2f} us/packet, aioquic {a:.2f} us/packet, "
              f"aioquic/fastpath {a / f:.2f}x", flush=True)
    install("fastpath")


if __name__ == "__main__":
    main()
