"""Hysteria 2 throughput against sing-box, in one run (issue 12's yardstick).

Candidates, every server, client and target in its own process:

  a  sing-box server    + reference client (``hysteria2`` wheel)
  b  fastpath serve     + reference client
  c  fastpath serve     + fastpath client
  d  sing-box server    + sing-box client
  e  bare aioquic server + bare aioquic client (download only: the ceiling of aioquic itself)

Each client is driven through its SOCKS5 listener by this process: one TCP connection through
one QUIC connection, to a loopback source (download) or sink (upload).  Rounds alternate the
candidates in the same order after the same warm-up; the median of the rounds is reported with
every round's figure, the ratio against sing-box's server with the same client (b/a, c/d), and
the server process tree's CPU seconds per GiB moved (utime + stime from /proc).  Then short
connections per second and UDP packets per second through each client's SOCKS5, and the
server's RSS per idle connection and per open stream.

The machine is 2 shared cores: figures are noisy, compare within a run, never across runs.

    python -m bench.test_bench_hy2_throughput                 # table on stdout
    python -m pytest bench/test_bench_hy2_throughput.py -q -s  # same, with the compare summary

Environment:
  HY2_TPUT_BYTES        bytes per transfer (default 256 MiB; HY2_TPUT_QUICK=1: 32 MiB)
  HY2_TPUT_ROUNDS       rounds (default 3)
  HY2_TPUT_CANDIDATES   which of a,b,c,d,e (default all)
  HY2_TPUT_VARIANTS     fastpath variants run side by side, e.g.
                        "batch:FASTPATH_UDP_BATCH=1;plain:FASTPATH_UDP_BATCH=0" — each gets its own
                        node and client started with that environment, b and c run for each;
                        PYTHON=/path/to/python in a variant runs its node and client with that
                        interpreter (another tree's venv: the code before a change, same run)
  HY2_TPUT_EXTRAS       0 skips the short connection, UDP and memory figures
  HY2_TPUT_FRESH        1: new client processes (new QUIC connections) every round
  HY2_TPUT_OBFS         a Salamander password for fastpath and the reference client (b, c;
                        sing-box candidates stay plain)
"""
from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

import hy2_peers as peers  # noqa: E402
from hy2_peers import cpu_seconds, rss_bytes, socks5_connect  # noqa: E402

QUICK = os.environ.get("HY2_TPUT_QUICK") == "1"
BYTES = int(os.environ.get("HY2_TPUT_BYTES", (32 if QUICK else 256) << 20))
ROUNDS = int(os.environ.get("HY2_TPUT_ROUNDS", 3))
WARMUP = min(BYTES, 16 << 20)
CANDIDATES = os.environ.get("HY2_TPUT_CANDIDATES", "a,b,c,d,e").split(",")
EXTRAS = os.environ.get("HY2_TPUT_EXTRAS", "1") != "0"
FRESH = os.environ.get("HY2_TPUT_FRESH") == "1"
PROCS = [sys.executable, str(HERE / "hy2_procs.py")]
GIB = 1 << 30


def _variants() -> list[tuple[str, dict]]:
    spec = os.environ.get("HY2_TPUT_VARIANTS", "")
    if not spec:
        return [("", {})]
    out = []
    for part in spec.split(";"):
        name, _, assigns = part.partition(":")
        env = dict(a.split("=", 1) for a in assigns.split(",") if a)
        out.append((name, env))
    return out


class Target:
    """A hy2_procs target process (source, sink, echo, bare-server)."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([*PROCS, *args], stdout=subprocess.PIPE, text=True)
        self.ports = [int(x) for x in self.proc.stdout.readline().split()]
        self.pid = self.proc.pid

    def close(self):
        self.proc.kill()
        self.proc.wait()


# -- one transfer --------------------------------------------------------------------------
BUF = os.urandom(1 << 20)


def download(socks_port: int, source_port: int, n: int) -> float:
    s = socks5_connect(socks_port, source_port)
    try:
        view = memoryview(bytearray(1 << 20))
        start = time.perf_counter()
        s.sendall(n.to_bytes(8, "big"))
        got = 0
        while got < n:
            k = s.recv_into(view)
            if not k:
                break
            got += k
        elapsed = time.perf_counter() - start
    finally:
        s.close()
    if got != n:
        raise AssertionError(f"download moved {got} of {n} bytes")
    return elapsed


def upload(socks_port: int, sink_port: int, n: int) -> float:
    s = socks5_connect(socks_port, sink_port)
    try:
        start = time.perf_counter()
        s.sendall(n.to_bytes(8, "big"))
        left = n
        while left:
            k = min(left, len(BUF))
            s.sendall(BUF[:k] if k < len(BUF) else BUF)
            left -= k
        reply = b""
        while len(reply) < 4:
            chunk = s.recv(4 - len(reply))
            if not chunk:
                break
            reply += chunk
        elapsed = time.perf_counter() - start
    finally:
        s.close()
    if reply != b"done":
        raise AssertionError(f"upload of {n} bytes not confirmed by the sink ({reply!r})")
    return elapsed


def bare_download(port: int, n: int) -> float:
    out = subprocess.run([*PROCS, "bare-download", str(port), str(n)], capture_output=True,
                         text=True, timeout=600, check=True)
    return float(out.stdout.split()[-1])


# -- the setup -----------------------------------------------------------------------------
class Bench:
    """Every process of one run; ``close`` ends them all."""

    def __init__(self, workdir: Path):
        from hy2_procs import _cert
        self.workdir = workdir
        self.closers = []
        cert, key = (str(p) for p in _cert())
        self.source = self._keep(Target("source"))
        self.sink = self._keep(Target("sink"))
        self.echo = self._keep(Target("echo"))
        self.pairs: dict[str, tuple[object, object]] = {}     # label -> (server, client)
        self.factories: dict = {}                               # label -> () -> client
        self.same_client_baseline: dict[str, str] = {}
        want = set(CANDIDATES)
        sing = None
        if want & {"a", "d"} and peers.sing_box_path():
            sing = self._keep(peers.SingBoxServer(workdir, "bench-password", cert, key))
            if "a" in want:
                self._pair("a sing-box srv + ref client", sing,
                           lambda: peers.StockClient(workdir, sing.address, sing.password, "-a"))
            if "d" in want:
                self._pair("d sing-box srv + sing-box client", sing,
                           lambda: peers.SingBoxClient(workdir, sing.address, sing.password))
        for vname, venv in _variants():
            tag = f" [{vname}]" if vname else ""
            vdir = workdir / (vname or "fastpath")
            vdir.mkdir(exist_ok=True)
            if not want & {"b", "c"}:
                break
            venv = dict(venv)
            python = venv.pop("PYTHON", None)
            node = self._keep(peers.FastpathServer(vdir, env=venv, python=python))
            if "b" in want:
                label = f"b fastpath serve + ref client{tag}"
                self._pair(label, node, lambda vdir=vdir, node=node, vname=vname: peers.StockClient(
                    vdir, node.address, node.password, f"-b{vname}"))
                self.same_client_baseline[label] = "a sing-box srv + ref client"
            if "c" in want:
                label = f"c fastpath serve + fastpath client{tag}"
                self._pair(label, node, lambda vdir=vdir, node=node, vname=vname, venv=venv,
                           python=python: peers.FastpathClient(
                               vdir, node.address, node.password, f"-c{vname}", env=venv,
                               python=python))
                self.same_client_baseline[label] = "d sing-box srv + sing-box client"
        self.bare = self._keep(Target("bare-server")) if "e" in want else None
        time.sleep(0.5)

    def _pair(self, label, server, make_client) -> None:
        self.factories[label] = make_client
        self.pairs[label] = (server, self._keep(make_client()))

    def fresh_client(self, label: str) -> None:
        """A new client process (so a new QUIC connection, congestion state from zero)."""
        server, old = self.pairs[label]
        old.close()
        self.closers.remove(old)
        self.pairs[label] = (server, self._keep(self.factories[label]()))

    def _keep(self, thing):
        self.closers.append(thing)
        return thing

    def close(self):
        for thing in reversed(self.closers):
            try:
                thing.close()
            except Exception as exc:            # one stuck peer must not leave the others
                print(f"closing {getattr(thing, 'name', thing)}: {exc}", file=sys.stderr)


def _measure(fn, server_pid: int, client_pid: int | None, n: int) -> dict:
    cpu0 = cpu_seconds(server_pid)
    ccpu0 = cpu_seconds(client_pid) if client_pid else 0.0
    seconds = fn(n)
    cpu = cpu_seconds(server_pid) - cpu0
    ccpu = (cpu_seconds(client_pid) - ccpu0) if client_pid else 0.0
    fig = {"MBps": n / seconds / 1e6, "srv_cpu_per_GiB": cpu * GIB / n}
    if client_pid:
        fig["cli_cpu_per_GiB"] = ccpu * GIB / n
    return fig


def throughput(bench: Bench, rounds: int = ROUNDS, n: int = BYTES) -> dict:
    """{(label, direction): [round figures]}, candidates alternated round by round.

    With ``HY2_TPUT_FRESH=1`` every round starts each client anew (a new QUIC connection), so
    one connection's congestion state does not carry through every round of a candidate."""
    def transfer(label, direction):
        def fn(k):
            client = bench.pairs[label][1]
            if direction == "down":
                return download(client.socks_port, bench.source.ports[0], k)
            return upload(client.socks_port, bench.sink.ports[0], k)
        return fn

    jobs = []
    for label in bench.pairs:
        jobs.append((label, "down", transfer(label, "down")))
        jobs.append((label, "up", transfer(label, "up")))
    if bench.bare is not None:
        jobs.append(("e bare aioquic", "down", lambda k: bare_download(bench.bare.ports[0], k)))

    def pids(label):
        if label in bench.pairs:
            server, client = bench.pairs[label]
            return server.pid, client.pid
        return bench.bare.pid, None

    results: dict = {}
    for r in range(rounds):
        if r == 0 or FRESH:
            for label in bench.pairs:
                if r and FRESH:
                    bench.fresh_client(label)
            for label, direction, fn in jobs:                # the same warm-up for everyone
                fn(WARMUP)
        for label, direction, fn in jobs:
            try:
                fig = _measure(fn, *pids(label), n)
            except Exception as exc:
                fig = {"error": f"{type(exc).__name__}: {exc}"}
            results.setdefault((label, direction), []).append(fig)
            print(f"  round {r + 1} {label:<48} {direction:<4} "
                  + (f"{fig['MBps']:7.1f} MB/s  srv {fig['srv_cpu_per_GiB']:5.1f} s/GiB"
                     if "MBps" in fig else fig["error"]), flush=True)
    return results


def median_of(figs: list[dict], key: str) -> float | None:
    vals = [f[key] for f in figs if key in f]
    return statistics.median(vals) if vals else None


# -- short connections, UDP, memory ---------------------------------------------------------
async def _short_connections(socks_port: int, echo_port: int, n: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)
    request = b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + echo_port.to_bytes(2, "big")

    async def one():
        async with sem:
            reader, writer = await asyncio.open_connection("127.0.0.1", socks_port)
            try:
                writer.write(b"\x05\x01\x00")
                assert await reader.readexactly(2) == b"\x05\x00"
                writer.write(request)
                rep = await reader.readexactly(10)
                assert rep[1] == 0, rep
                writer.write(b"x" * 32)
                await reader.readexactly(32)
            finally:
                writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - start)


def short_connections(bench: Bench, n: int = 300, concurrency: int = 20, rounds: int = 2) -> dict:
    out: dict = {}
    for label, (_, client) in bench.pairs.items():
        asyncio.run(_short_connections(client.socks_port, bench.echo.ports[0], 20, 5))  # warm
    for _ in range(rounds):
        for label, (_, client) in bench.pairs.items():
            try:
                out.setdefault(label, []).append(asyncio.run(asyncio.wait_for(
                    _short_connections(client.socks_port, bench.echo.ports[0], n, concurrency), 60)))
            except Exception as exc:
                print(f"  short connections {label}: {type(exc).__name__}: {exc}")
    return out


def udp_packets(bench: Bench, n: int = 5000, rounds: int = 2) -> dict:
    from test_bench_hy2_proxy import _socks5_udp_relay, _windowed_echo
    udp_port = bench.echo.ports[1]
    payload = b"u" * 100
    header = b"\x00\x00\x00\x01" + socket.inet_aton("127.0.0.1") + udp_port.to_bytes(2, "big")
    out: dict = {}
    relays = {}
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        for label, (_, client) in bench.pairs.items():
            try:
                relays[label] = _socks5_udp_relay(client.socks_port)
                _windowed_echo(sock, relays[label][1], header + payload, 100, 1,
                               len(header) + len(payload))
            except Exception as exc:
                print(f"  UDP {label}: {type(exc).__name__}: {exc}")
        for _ in range(rounds):
            for label, (ctl, relay) in relays.items():
                pps, got = _windowed_echo(sock, relay, header + payload, n, 32,
                                          len(header) + len(payload))
                out.setdefault(label, []).append(pps)
    finally:
        for ctl, _ in relays.values():
            ctl.close()
        sock.close()
    return out


async def _hold_connections(server: str, password: str, k: int, pid: int, echo_port: int,
                            streams: int) -> tuple[float, float]:
    """RSS of the server tree per idle connection (``k`` of them, our client) and per open
    stream (``streams`` TCP streams held on one connection)."""
    from fastpath.hy2.client.client import simple_client
    clients = []
    await asyncio.sleep(0.3)
    base = rss_bytes(pid)
    try:
        for _ in range(k):
            c = simple_client(server, password)
            await asyncio.wait_for(c.ensure_connected(), 20)
            clients.append(c)
        await asyncio.sleep(1.0)
        per_conn = (rss_bytes(pid) - base) / k
        before = rss_bytes(pid)
        held = []
        for _ in range(streams):
            reader, writer = await clients[0].open_tcp(f"127.0.0.1:{echo_port}")
            writer.write(b"x" * 64)
            await reader.readexactly(64)
            held.append(writer)
        await asyncio.sleep(1.0)
        per_stream = (rss_bytes(pid) - before) / streams
        for w in held:
            w.close()
    finally:
        for c in clients:
            await c.close()
    return per_conn, per_stream


def memory(bench: Bench, k: int = 50, streams: int = 100) -> dict:
    out = {}
    servers = {}
    for label, (server, _) in bench.pairs.items():
        variant = label[label.index(" ["):] if " [" in label else ""
        servers.setdefault(id(server), (label.split(" + ")[0] + variant, server))
    for name, server in servers.values():
        try:
            out[name] = asyncio.run(_hold_connections(server.address, server.password, k,
                                                      server.pid, bench.echo.ports[0], streams))
        except Exception as exc:
            print(f"  memory {name}: {type(exc).__name__}: {exc}")
    return out


# -- report ---------------------------------------------------------------------------------
def report(tput: dict, bench: Bench, conns: dict, udp: dict, mem: dict) -> list[str]:
    lines = [f"Hysteria 2 throughput, {BYTES >> 20} MiB per transfer, median of {ROUNDS} rounds "
             f"(machine: {os.cpu_count()} cores, shared; compare within this run only)", "",
             f"{'candidate':<50} {'dir':<4} {'MB/s':>7} {'ratio':>6} {'srv s/GiB':>9} "
             f"{'cli s/GiB':>9}  rounds MB/s"]
    for (label, direction), figs in tput.items():
        mbps = median_of(figs, "MBps")
        if mbps is None:
            lines.append(f"{label:<50} {direction:<4} failed: {figs[0].get('error')}")
            continue
        base_label = bench.same_client_baseline.get(label)
        base = median_of(tput.get((base_label, direction), []), "MBps") if base_label else None
        ratio = f"{mbps / base:6.2f}" if base else "     -"
        cli = median_of(figs, "cli_cpu_per_GiB")
        cli = f"{cli:9.1f}" if cli is not None else "        -"
        lines.append(f"{label:<50} {direction:<4} {mbps:7.1f} {ratio} "
                     f"{median_of(figs, 'srv_cpu_per_GiB'):9.1f} {cli}  "
                     + " ".join(f"{f['MBps']:.0f}" if "MBps" in f else "x" for f in figs))
    lines.append("(ratio: vs sing-box's server with the same client, same direction)")
    if conns:
        lines += ["", f"{'short connections/s through SOCKS5':<50} {'median':>8}  rounds"]
        for label, rates in conns.items():
            lines.append(f"{label:<50} {statistics.median(rates):8.0f}  "
                         + " ".join(f"{r:.0f}" for r in rates))
    if udp:
        lines += ["", f"{'UDP echo packets/s through SOCKS5':<50} {'median':>8}  rounds"]
        for label, rates in udp.items():
            lines.append(f"{label:<50} {statistics.median(rates):8.0f}  "
                         + " ".join(f"{r:.0f}" for r in rates))
    if mem:
        lines += ["", f"{'server RSS (fastpath client connecting)':<50} {'KiB/idle conn':>13} "
                      f"{'KiB/stream':>10}"]
        for name, (per_conn, per_stream) in mem.items():
            lines.append(f"{name:<50} {per_conn / 1024:13.1f} {per_stream / 1024:10.1f}")
    return lines


def run_all(workdir: Path) -> tuple[list[str], dict]:
    bench = Bench(workdir)
    try:
        tput = throughput(bench)
        conns = short_connections(bench) if EXTRAS else {}
        udp = udp_packets(bench) if EXTRAS else {}
        mem = memory(bench) if EXTRAS else {}
        return report(tput, bench, conns, udp, mem), {"tput": tput, "conns": conns, "udp": udp,
                                                      "mem": mem, "bench": bench}
    finally:
        bench.close()


def test_hy2_throughput_against_sing_box(tmp_path, compare):
    lines, figures = run_all(tmp_path)
    print("\n" + "\n".join(lines))
    tput, bench = figures["tput"], figures["bench"]
    assert tput, "no candidate ran"
    for (label, direction), figs in tput.items():
        mbps = median_of(figs, "MBps")
        assert mbps is not None, f"{label} {direction}: every round failed: {figs[0]}"
        name = f"hy2 tput {direction}: {label}"
        compare.record(name, mbps, "MB/s", better="higher",
                       baseline=(f"hy2 tput {direction}: {bench.same_client_baseline[label]}"
                                 if label in bench.same_client_baseline else None))
        compare.record(f"hy2 srv CPU/GiB {direction}: {label}", median_of(figs, "srv_cpu_per_GiB"),
                       "s/GiB")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="hy2-tput-") as d:
        lines, _ = run_all(Path(d))
    print("\n".join(lines))
