"""Compiled Hysteria 2 codecs against the pure-Python reference, in the same run.

    python setup.py build_ext --inplace
    python -m pytest bench/test_bench_hy2_codecs.py --benchmark-enable

Each codec is one benchmark group with a ``compiled`` and a ``reference`` row.  Both per-call
figures go to the bench harness (``compare``, bench/conftest.py), which prints the compiled
codec's speedup over the reference at the end of the session (goal >= 10x) and keeps it in
bench/.last-run.json.  Without ``--benchmark-enable`` (the project default) every case runs
once, as a smoke test.

A timed round is ``CALLS`` direct calls ``fn(a, b, ...)`` from a Python loop, as the node's
own code calls the codecs, for both implementations alike.  pytest-benchmark's own runner
calls ``fn(*args, **kwargs)``, and with an empty ``kwargs`` that call path alone costs ~20 ns
here: a third of a compiled codec's time, paid by no real caller.
"""
import operator
import statistics
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the in-place build and tests/, with the `pytest` entry point

from fastpath._native import load  # noqa: E402
from tests.hy2 import reference_codecs as ref  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from paired import paired, per_op, record  # noqa: E402

frames = load("fastpath.hy2.wire.frames")
salamander = load("fastpath.hy2.wire.salamander")

IMPLS = ["compiled", "reference"]
ADDRESS = "93.184.216.34:443"
PAYLOAD_1200 = os.urandom(1200)
# A full-size datagram's payload, and a small one (a DNS query): large payloads are bound by the
# allocation and copy that both implementations make.
UDP_PAYLOADS = {1100: PAYLOAD_1200[:1100], 64: PAYLOAD_1200[:64]}
UDP_WIRES = {n: frames.encode_udp_message(7, 0, 0, 1, ADDRESS, p) for n, p in UDP_PAYLOADS.items()}
TCP_REQUEST = frames.encode_tcp_request("example.com:443", padding_len=256) + b"GET / HTTP/1.1\r\n"
PAYLOAD_3000 = os.urandom(3000)
PASSWORD = b"average_password"
OBFUSCATED_1200 = salamander.Salamander(PASSWORD).obfuscate(PAYLOAD_1200)


def bench(group):
    """A benchmark group.  Rounds of at least 0.2 ms, so the timer reads do not count."""
    return pytest.mark.benchmark(group=group, min_time=0.0002, max_time=0.5, warmup=True,
                                 warmup_iterations=10)


def _impl(name):
    return frames if name == "compiled" else ref


CALLS = 200


def direct_calls(fn, args, n):
    """A function of no arguments that calls ``fn(*args)`` ``n`` times, each a plain positional
    call from local variables (the loop is generated for the number of arguments)."""
    names = ", ".join(f"a{i}" for i in range(len(args)))
    scope = {}
    exec(f"def loop(fn, r, {names}):\n    for _ in r:\n        fn({names})\n", scope)
    loop, r = scope["loop"], range(n)
    return lambda: loop(fn, r, *args)


@pytest.fixture
def run(benchmark, compare):
    """Benchmark ``CALLS`` direct calls and record the time per call (minimum over rounds) as
    "hy2 <what>, <impl> (ns/call)", the compiled figure against the reference one.  The
    result of one more call is returned, for the test to check."""

    def run(what, impl, fn, *args):
        benchmark(direct_calls(fn, args, CALLS))
        if getattr(benchmark, "stats", None) is not None:
            name = f"hy2 {what}, {{}} (ns/call)"
            compare.record(name.format(impl), compare.per_op_ns(benchmark, CALLS), "ns",
                           baseline=name.format("reference") if impl != "reference" else None)
        return fn(*args)

    return run


@bench("hy2 tcp request parse (one-shot)")
@pytest.mark.parametrize("impl", IMPLS)
def test_tcp_request_parse(run, impl):
    address, consumed = run("tcp request parse (one-shot)", impl,
                             _impl(impl).parse_tcp_request, TCP_REQUEST)
    assert address == "example.com:443"


@bench("hy2 tcp request parse (incremental)")
@pytest.mark.parametrize("impl", IMPLS)
def test_tcp_request_parser_feed(run, impl):
    parser_class = _impl(impl).TcpRequestParser

    def parse(data):
        parser = parser_class()
        parser.feed(data)
        return parser.address, parser.leftover

    address, leftover = run("tcp request parse (incremental)", impl, parse,
                             TCP_REQUEST)
    assert address == "example.com:443" and leftover == b"GET / HTTP/1.1\r\n"


@bench("hy2 udp message encode")
@pytest.mark.parametrize("size", sorted(UDP_PAYLOADS))
@pytest.mark.parametrize("impl", IMPLS)
def test_udp_encode(run, impl, size):
    wire = run(f"udp message encode ({size} B)", impl,
                _impl(impl).encode_udp_message, 7, 0, 0, 1, ADDRESS, UDP_PAYLOADS[size])
    assert wire == UDP_WIRES[size]


@bench("hy2 udp message encode")
def test_udp_encode_bound(run):
    """What any encoder that returns a new bytes object pays for a full-size datagram: one
    allocation of the message and one copy of the payload (here ``header + payload`` through
    ``operator.concat``).  Recorded against the reference: the highest speedup possible."""
    header = UDP_WIRES[1100][:-1100]
    wire = run("udp message encode (1100 B)", "bound: header + payload concat", operator.concat,
               header, UDP_PAYLOADS[1100])
    assert wire == UDP_WIRES[1100]


@bench("hy2 udp message parse")
@pytest.mark.parametrize("size", sorted(UDP_PAYLOADS))
@pytest.mark.parametrize("impl", IMPLS)
def test_udp_parse(run, impl, size):
    msg = run(f"udp message parse ({size} B)", impl, _impl(impl).parse_udp_message,
               UDP_WIRES[size])
    assert msg.payload == UDP_PAYLOADS[size] and msg.address == ADDRESS


@bench("hy2 udp fragment + reassemble")
@pytest.mark.parametrize("impl", IMPLS)
def test_fragment_reassemble(run, impl):
    codec = _impl(impl)

    def roundtrip(payload):
        defrag = codec.Defragmenter()
        whole = None
        for wire in codec.fragment_udp_message(7, ADDRESS, payload, 1200):
            whole = defrag.feed(codec.parse_udp_message(wire))
        return whole

    assert run("fragment + reassemble (3000 B)", impl, roundtrip,
                PAYLOAD_3000) == PAYLOAD_3000


# Salamander: the compiled codec against a reasonable pure-Python one (whole-integer XOR,
# ``reference_codecs.WholeIntSalamander``), alternated with the same warm-up and statistic
# (bench/paired.py).  The byte-by-byte generator of ``reference_codecs.Salamander`` is kept as
# a third figure only: it is how the reference spells the algorithm, not how anyone would
# write it for speed, and the 310x once reported came from it.
SALAMANDER_CALLS = 2000


def _salamander_pair(compare, what, op, arg, expect):
    fast = getattr(salamander.Salamander(PASSWORD), op)
    plain = getattr(ref.WholeIntSalamander(PASSWORD), op)
    slow = getattr(ref.Salamander(PASSWORD), op)
    for fn in (fast, plain, slow):
        assert expect(fn(arg)), fn
    calls = direct_calls(fast, (arg,), SALAMANDER_CALLS), direct_calls(plain, (arg,), SALAMANDER_CALLS)
    # CPU time per call is the figure compared: on this shared machine a pure-Python side's
    # wall time swings 10x with the neighbours' load, its CPU time does not.
    result = paired(lambda: per_op(calls[1], SALAMANDER_CALLS).cpu_ns,
                    lambda: per_op(calls[0], SALAMANDER_CALLS).cpu_ns,
                    pairs=7, warmup=1, better="lower", unit="CPU ns")
    wall = paired(lambda: per_op(calls[1], SALAMANDER_CALLS).wall_ns,
                  lambda: per_op(calls[0], SALAMANDER_CALLS).wall_ns,
                  pairs=5, warmup=0, better="lower", unit="ns")
    slow(arg)
    gen = statistics.median(per_op(direct_calls(slow, (arg,), 20), 20).cpu_ns for _ in range(3))
    print(f"\n[{what}, CPU] " + ", ".join(f"{k}={v}" for k, v in result.summary().items())
          + f", byte_generator_cpu_ns={gen:.0f}")
    print(f"[{what}, wall] " + ", ".join(f"{k}={v}" for k, v in wall.summary().items()))
    record(compare, f"hy2 {what}, compiled (CPU ns/call)",
           f"hy2 {what}, pure Python whole-int XOR (CPU ns/call)", result)
    record(compare, f"hy2 {what}, compiled (ns/call)",
           f"hy2 {what}, pure Python whole-int XOR (ns/call)", wall)
    compare.record(f"hy2 {what}, reference byte generator (CPU ns/call)", gen, "ns")
    compare.record(f"hy2 {what}, compiled vs byte generator (CPU ns/call)",
                   result.candidate.median, "ns",
                   baseline=f"hy2 {what}, reference byte generator (CPU ns/call)")


def test_salamander_obfuscate_paired(compare):
    _salamander_pair(compare, "salamander obfuscate (1200 B)", "obfuscate", PAYLOAD_1200,
                     lambda packet: len(packet) == 1208)


def test_salamander_deobfuscate_paired(compare):
    _salamander_pair(compare, "salamander deobfuscate (1200 B)", "deobfuscate", OBFUSCATED_1200,
                     lambda payload: payload == PAYLOAD_1200)


def test_salamander_baselines_agree():
    """The fair baseline is the same codec: byte for byte equal to the reference and the
    compiled one on a fixed salt, any length."""
    salt = b"8 bytes!"
    for n in (0, 1, 31, 32, 33, 1200, 1500):
        data = PAYLOAD_3000[:n]
        want = ref.Salamander(PASSWORD).obfuscate_with_salt(data, salt)
        assert ref.WholeIntSalamander(PASSWORD).obfuscate_with_salt(data, salt) == want
        assert salamander.Salamander(PASSWORD).obfuscate_with_salt(data, salt) == want
        if n:
            assert ref.WholeIntSalamander(PASSWORD).deobfuscate(want) == data
