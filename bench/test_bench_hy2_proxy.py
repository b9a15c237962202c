"""Hysteria 2 data plane, against baselines measured in the same run:

- bulk download through our client + server vs. a bare aioquic transfer of the same bytes
  (goal: the proxy keeps >= 80 % of bare aioquic's throughput);
- short connections per second through the proxy vs. direct TCP connections to the target;
- UDP packets per second through the proxy vs. direct UDP to the echo target;
- one worker vs. two workers of a real node, with 4 client processes downloading at once.

Every server, target and client runs in its own process.  Baseline and proxy are measured
alternately with the same warm-up and compared median to median (bench/paired.py); the
best-of ratio is reported too.  Run with
``python -m pytest bench/test_bench_hy2_proxy.py --benchmark-enable -q -s``.
"""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fastpath.hy2.client.client import simple_client
from fastpath.worker.event_loop import run

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from paired import paired, record  # noqa: E402
PROCS = [sys.executable, str(HERE / "hy2_procs.py")]
BULK = int(os.environ.get("HY2_BENCH_BYTES", 64 * 1024 * 1024))
PASSWORD = "bench-password"


class Proc:
    def __init__(self, *args):
        self.p = subprocess.Popen([*PROCS, *args], stdout=subprocess.PIPE, text=True)
        self.ports = [int(x) for x in self.p.stdout.readline().split()]

    def close(self):
        self.p.kill()
        self.p.wait()


@pytest.fixture(scope="module")
def procs():
    started = {"bare": Proc("bare-server"), "hy2": Proc("hy2-server", PASSWORD),
               "source": Proc("source"), "echo": Proc("echo")}
    time.sleep(0.5)
    yield started
    for p in started.values():
        p.close()


def _report(name: str, figures: dict) -> None:
    print(f"\n[{name}] " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def test_bulk_download_vs_bare_aioquic(benchmark, procs, compare):
    sys.path.insert(0, str(HERE))
    import hy2_procs

    def bare():
        return run(hy2_procs.bare_download(procs["bare"].ports[0], BULK))

    def proxied():
        return run(hy2_procs.proxy_download(f"127.0.0.1:{procs['hy2'].ports[0]}", PASSWORD,
                                            f"127.0.0.1:{procs['source'].ports[0]}", BULK))

    result = paired(lambda: BULK / bare() / 1e6, lambda: BULK / proxied() / 1e6,
                    pairs=3, warmup=1, better="higher", unit="MB/s")
    figures = {"bytes": BULK, **result.summary()}
    benchmark.extra_info.update(figures)
    _report("bulk_download", figures)
    record(compare, "hy2 bulk download: client+server proxy", "hy2 bulk download: bare aioquic",
           result)


def test_short_connections_per_second(benchmark, procs, compare):
    echo_port = procs["echo"].ports[0]
    n, concurrency = 600, 50

    async def echoes_per_second(open_echo) -> float:
        """``n`` 32-byte echoes over streams from ``open_echo()``, ``concurrency`` at a time."""
        sem = asyncio.Semaphore(concurrency)

        async def one():
            async with sem:
                reader, writer = await open_echo()
                writer.write(b"x" * 32)
                await reader.readexactly(32)
                writer.close()

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return n / (time.perf_counter() - start)

    async def through_proxy():
        client = simple_client(f"127.0.0.1:{procs['hy2'].ports[0]}", PASSWORD)
        await client.ensure_connected()
        rate = await echoes_per_second(lambda: client.open_tcp(f"127.0.0.1:{echo_port}"))
        await client.close()
        return rate

    async def direct():
        return await echoes_per_second(lambda: asyncio.open_connection("127.0.0.1", echo_port))

    result = paired(lambda: run(direct()), lambda: run(through_proxy()), pairs=3, warmup=1,
                    better="higher", unit="conn/s")
    figures = {"connections": n, "concurrency": concurrency, **result.summary()}
    benchmark.extra_info.update(figures)
    _report("short_connections", figures)
    record(compare, "hy2 short connections: through proxy", "hy2 short connections: direct TCP",
           result)


def test_udp_packets_per_second(benchmark, procs, compare):
    udp_port = procs["echo"].ports[1]
    n, window, size = 5000, 32, 100
    payload = b"u" * size

    async def windows(send, recv) -> tuple[float, int]:
        """``n`` datagrams in bursts of ``window``, each burst's echoes awaited (0.5 s each):
        (echoes/s, echoes)."""
        received = 0
        start = time.perf_counter()
        sent = 0
        while sent < n:
            burst = min(window, n - sent)
            for _ in range(burst):
                send()
            sent += burst
            for _ in range(burst):
                try:
                    await asyncio.wait_for(recv(), 0.5)
                    received += 1
                except asyncio.TimeoutError:
                    break
        return received / (time.perf_counter() - start), received

    async def through_proxy():
        client = simple_client(f"127.0.0.1:{procs['hy2'].ports[0]}", PASSWORD)
        await client.ensure_connected()
        udp = await client.udp_session()
        target = f"127.0.0.1:{udp_port}"
        result = await windows(lambda: udp.send(target, payload), udp.recv)
        await client.close()
        return result

    async def direct():
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.connect(("127.0.0.1", udp_port))
        result = await windows(lambda: sock.send(payload), lambda: loop.sock_recv(sock, 2048))
        sock.close()
        return result

    delivered = {"direct": [], "proxy": []}

    def side(name, coro_fn):
        def measure():
            pps, got = run(coro_fn())
            delivered[name].append(got)
            return pps
        return measure

    result = paired(side("direct", direct), side("proxy", through_proxy), pairs=5, warmup=1,
                    better="higher", unit="packets/s")
    figures = {"packets": n, "payload": size, "window": window, **result.summary(),
               "delivered_direct": delivered["direct"], "delivered_proxy": delivered["proxy"]}
    benchmark.extra_info.update(figures)
    _report("udp_packets", figures)
    record(compare, "hy2 UDP echo: through proxy", "hy2 UDP echo: direct", result)


def _node_aggregate(tmp_path, workers: int, clients: int, each: int, source_port: int) -> float:
    from tests.hy2.conftest import default_secret
    from tests.support.node import NodeProcess
    base = tmp_path / f"w{workers}"
    base.mkdir(parents=True, exist_ok=True)
    with NodeProcess(base, {}, workers=workers) as node:
        secret = default_secret(node.data_dir)
        server = node.config["listen"]
        run(asyncio.wait_for(simple_client(server, secret).ensure_connected(), 20))
        start = time.perf_counter()
        ps = [subprocess.Popen([*PROCS, "download", server, secret, f"127.0.0.1:{source_port}",
                                str(each)], stdout=subprocess.PIPE, text=True)
              for _ in range(clients)]
        for p in ps:
            out, _ = p.communicate(timeout=300)
            assert p.returncode == 0, out
        return clients * each / (time.perf_counter() - start) / 1e6


def test_one_vs_two_workers_four_clients(benchmark, procs, tmp_path, compare):
    each = BULK // 4
    one = _node_aggregate(tmp_path, 1, 4, each, procs["source"].ports[0])
    out = []
    benchmark.pedantic(lambda: out.append(_node_aggregate(tmp_path, 2, 4, each,
                                                         procs["source"].ports[0])),
                       rounds=1, iterations=1)
    two = out[0]
    figures = {"clients": 4, "bytes_each": each, "one_worker_MBps": round(one, 1),
               "two_workers_MBps": round(two, 1), "ratio": round(two / one, 3),
               "cores": os.cpu_count()}
    benchmark.extra_info.update(figures)
    _report("workers", figures)
    compare.record("hy2 4 clients: 1 worker", one, "MB/s", better="higher")
    compare.record("hy2 4 clients: 2 workers", two, "MB/s", baseline="hy2 4 clients: 1 worker",
                   better="higher")


def _windowed_echo(sock: socket.socket, dest, packet: bytes, n: int, window: int,
                   expect: int) -> tuple[float, int]:
    """Send ``n`` packets in bursts of ``window`` and wait for each burst's echoes (``expect``
    bytes each): packets per second and echoes received."""
    sock.settimeout(0.5)
    received = sent = 0
    start = time.perf_counter()
    while sent < n:
        burst = min(window, n - sent)
        for _ in range(burst):
            sock.sendto(packet, dest)
        sent += burst
        for _ in range(burst):
            try:
                if len(sock.recv(65535)) == expect:
                    received += 1
            except socket.timeout:
                break
    return received / (time.perf_counter() - start), received


def _socks5_udp_relay(port: int) -> tuple[socket.socket, tuple[str, int]]:
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.sendall(b"\x05\x01\x00")
    assert s.recv(2) == b"\x05\x00"
    s.sendall(b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
    rep = b""
    while len(rep) < 10:
        rep += s.recv(10 - len(rep))
    assert rep[:2] == b"\x05\x00", rep
    return s, (socket.inet_ntoa(rep[4:8]), int.from_bytes(rep[8:10], "big"))


def test_client_udp_listeners_packets_per_second(benchmark, procs, tmp_path, compare):
    """``fastpath client`` as a process: its UDP forward and its SOCKS5 UDP ASSOCIATE relay,
    each fed by a plain socket, vs. the same socket talking to the echo target directly."""
    import yaml

    from tests.support.node import free_tcp_port, free_udp_port
    udp_port = procs["echo"].ports[1]
    n, window, size = 20000, 32, 100
    payload = b"u" * size
    fwd_port, socks_port = free_udp_port(), free_tcp_port()
    config = {"server": f"127.0.0.1:{procs['hy2'].ports[0]}", "auth": PASSWORD,
              "tls": {"insecure": True},
              "socks5": {"listen": f"127.0.0.1:{socks_port}"},
              "udpForwarding": [{"listen": f"127.0.0.1:{fwd_port}",
                                 "remote": f"127.0.0.1:{udp_port}", "timeout": "60s"}]}
    path = tmp_path / "client.yaml"
    path.write_text(yaml.safe_dump(config))
    client = subprocess.Popen([sys.executable, "-m", "fastpath", "client", "-c", str(path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", socks_port), 0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and client.poll() is None, "client did not start"
                time.sleep(0.1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        delivered = {"direct": [], "forward": [], "socks5": []}

        def side(name, dest, packet, expect):
            def measure():
                pps, got = _windowed_echo(sock, dest, packet, n, window, expect)
                delivered[name].append(got)
                return pps
            return measure

        direct = side("direct", ("127.0.0.1", udp_port), payload, size)
        fwd = paired(direct, side("forward", ("127.0.0.1", fwd_port), payload, size),
                     pairs=3, warmup=1, better="higher", unit="packets/s")
        ctl, relay = _socks5_udp_relay(socks_port)
        header = b"\x00\x00\x00\x01" + socket.inet_aton("127.0.0.1") + udp_port.to_bytes(2, "big")
        socks = paired(direct, side("socks5", relay, header + payload, len(header) + size),
                       pairs=3, warmup=1, better="higher", unit="packets/s")
        ctl.close()
        sock.close()
    finally:
        client.terminate()
        client.wait(10)
    figures = {"packets": n, "payload": size, "window": window,
               "forward": fwd.summary(), "socks5": socks.summary(), "delivered": delivered}
    benchmark.extra_info.update(figures)
    _report("client_udp_listeners", figures)
    record(compare, "hy2 client UDP: forward", "hy2 client UDP: direct (forward pairs)", fwd)
    record(compare, "hy2 client UDP: SOCKS5", "hy2 client UDP: direct (SOCKS5 pairs)", socks)
