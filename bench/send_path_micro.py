"""Issue 12, the compiled send path: a Hysteria 2 server connection in memory sending a download.

A ``Hy2QuicConnection`` server (fastpath's) sends ``--mib`` MiB on one stream to an aioquic
client in the same process (no sockets; the client's CPU is not counted).  Per round, each
variant in turn: ``now`` (compiled stream sender + write loop + compiled builder), ``sendoff``
(``FASTPATH_QUIC_SENDPATH=aioquic``: compiled builder only, the previous tree), ``aioquic``
(neither).  Prints the server's CPU microseconds per packet sent and the ratios; checks the
client received every byte in order.

    python bench/send_path_micro.py [--rounds 5] [--mib 16] [--only now] [--loss 0.01]
    python bench/send_path_micro.py --upload-trace [--variants now,sendoff,aioquic]
"""
from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from aioquic.quic import events as qe  # noqa: E402
from aioquic.quic.configuration import QuicConfiguration  # noqa: E402
from aioquic.quic.connection import QuicConnection  # noqa: E402

from fastpath.hy2.quic import aioquic_seam  # noqa: E402
from fastpath.hy2.quic.quic_connection import Hy2QuicConnection  # noqa: E402

from builder_micro import handshake  # noqa: E402

VARIANTS = {"now": ("fastpath", "fastpath"), "sendoff": ("fastpath", "aioquic"),
            "aioquic": ("aioquic", "aioquic")}


def install(variant: str) -> None:
    builder, send = VARIANTS[variant]
    aioquic_seam.install(builder)
    aioquic_seam.install_send_path(send)


def pair(cert: str, key: str, window: int = 8 << 20):
    client = QuicConnection(configuration=QuicConfiguration(
        is_client=True, alpn_protocols=["h3"], verify_mode=0, max_data=64 << 20,
        max_stream_data=window, max_datagram_frame_size=1200))
    cfg = QuicConfiguration(is_client=False, alpn_protocols=["h3"], max_datagram_frame_size=1200)
    cfg.load_cert_chain(cert, key)
    server = Hy2QuicConnection(configuration=cfg, original_destination_connection_id=(
        client.original_destination_connection_id))
    return client, server


def exchange(client, server, now: float, rounds: int = 5, step: float = 0.01) -> float:
    """Moves what each side has to send to the other ``rounds`` times, ``step`` apart; the
    time after."""
    for _ in range(rounds):
        for data, _ in client.datagrams_to_send(now):
            server.receive_datagram(data, ("10.0.0.2", 2), now)
        for data, _ in server.datagrams_to_send(now):
            client.receive_datagram(data, ("10.0.0.1", 1), now)
        now += step
    return now


def download(variant: str, cert: str, key: str, total: int, loss: float = 0.0,
             seed: int = 1) -> tuple[float, int, bool]:
    """(server CPU s per packet, packets, received bytes equal)."""
    install(variant)
    rng = random.Random(seed)
    client, server = pair(cert, key)
    now = 1.0
    handshake(client, server, now)
    sid = client.get_next_available_stream_id()
    client.send_stream_data(sid, b"go")
    now = exchange(client, server, now)
    while server.next_event() is not None:
        pass
    assert sid in server._streams, "the stream did not reach the server"
    chunk = random.Random(seed).randbytes(65536)
    want = hashlib.sha256()
    got = hashlib.sha256()
    received = 0
    cpu = 0.0
    packets = 0
    queued = 0
    idle = 0
    while received < total and idle < 2000:
        now += 0.001
        t0 = time.process_time()
        if queued < total and server.unsent_bytes(sid) < (1 << 20):
            server.send_stream_data(sid, chunk, end_stream=queued + len(chunk) >= total)
            want.update(chunk)
            queued += len(chunk)
        out = server.datagrams_to_send(now)
        timer = server.get_timer()
        if timer is not None and timer <= now:
            server.handle_timer(now)
        cpu += time.process_time() - t0
        packets += len(out)
        for data, _addr in out:
            if loss and rng.random() < loss:
                continue
            client.receive_datagram(data, ("10.0.0.1", 1), now)
        event = client.next_event()
        while event is not None:
            if isinstance(event, qe.StreamDataReceived):
                got.update(event.data)
                received += len(event.data)
            event = client.next_event()
        acks = client.datagrams_to_send(now)
        t0 = time.process_time()
        for data, _addr in acks:
            server.receive_datagram(data, ("10.0.0.2", 2), now)
        while server.next_event() is not None:
            pass
        cpu += time.process_time() - t0
        idle = idle + 1 if not out else 0
        ctimer = client.get_timer()
        if ctimer is not None and ctimer <= now:
            client.handle_timer(now)
    return cpu / max(packets, 1), packets, received == total and got.digest() == want.digest()


def upload_trace(variant: str, cert: str, key: str, total: int) -> tuple:
    """An aioquic client uploads ``total`` bytes to the server with ``variant`` installed, in
    fixed 0.5 ms steps of at most 40 packets: what the server sent back (packets, bytes) and
    how many steps it took.  Identical figures for two variants mean the server's send side
    behaved the same, packet for packet."""
    install(variant)
    client, server = pair(cert, key)
    now = 1.0
    handshake(client, server, now)
    sid = client.get_next_available_stream_id()
    chunk = bytes(65536)
    sent = got = packets = nbytes = steps = 0
    while got < total and steps < 100000:
        steps += 1
        now += 0.0005
        stream = client._streams.get(sid)
        if sent < total and (stream is None or stream.sender._buffer_stop
                             - stream.sender._buffer_start < (1 << 20)):
            client.send_stream_data(sid, chunk)
            sent += len(chunk)
        for data, _addr in client.datagrams_to_send(now)[:40]:
            server.receive_datagram(data, ("10.0.0.2", 2), now)
        event = server.next_event()
        while event is not None:
            if isinstance(event, qe.StreamDataReceived):
                got += len(event.data)
            event = server.next_event()
        back = server.datagrams_to_send(now)
        packets += len(back)
        nbytes += sum(len(d) for d, _ in back)
        for data, _addr in back:
            client.receive_datagram(data, ("10.0.0.1", 1), now)
        while client.next_event() is not None:
            pass
        for conn in (client, server):
            timer = conn.get_timer()
            if timer is not None and timer <= now:
                conn.handle_timer(now)
    return got, packets, nbytes, steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mib", type=int, default=16)
    ap.add_argument("--loss", type=float, default=0.0)
    ap.add_argument("--only", choices=sorted(VARIANTS))
    ap.add_argument("--variants", default="now,sendoff")
    ap.add_argument("--upload-trace", action="store_true",
                    help="what the server sends back during an upload, per variant")
    args = ap.parse_args()
    from fastpath.supervisor.bootstrap import ensure_certificate
    cert, key = map(str, ensure_certificate(Path(tempfile.mkdtemp())))
    total = args.mib << 20
    if args.upload_trace:
        for name in args.variants.split(","):
            got, packets, nbytes, steps = upload_trace(name, cert, key, total)
            print(f"{name}: received {got} bytes; server sent {packets} packets, {nbytes} bytes,"
                  f" in {steps} steps")
        return
    if args.only:
        print(args.only, download(args.only, cert, key, total, args.loss))
        return
    names = args.variants.split(",")
    results: dict[str, list[float]] = {n: [] for n in names}
    for i in range(args.rounds):
        order = names if i % 2 == 0 else names[::-1]
        line = []
        for name in order:
            per_packet, packets, ok = download(name, cert, key, total, args.loss, seed=i + 1)
            if not ok:
                raise SystemExit(f"{name}: the client did not receive the same bytes")
            results[name].append(per_packet * 1e6)
        for name in names:
            line.append(f"{name} {results[name][-1]:.2f} us")
        print(f"round {i + 1}: server CPU per packet sent: " + ", ".join(line)
              + f" ({packets} packets)", flush=True)
    base = statistics.median(results[names[-1]])
    for name in names:
        m = statistics.median(results[name])
        print(f"median {name}: {m:.2f} us/packet ({base / m:.2f}x less than {names[-1]})")


if __name__ == "__main__":
    main()
