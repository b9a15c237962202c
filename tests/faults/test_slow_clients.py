"""Slow or idle clients cannot starve the node's HTTP faces (issue 18, item 2).

300 connections trickle their request heads (a header line every 0.5 s, never the end) at a
face while fresh requests are timed: each must be answered within 1 s.  On the control port
(native API, stream API, and the Traffic Stats listener served by the same gunicorn worker)
the trickling connections must also be closed once the head deadline passes.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
import time

import pytest

from fastpath.control import http_worker
from tests.faults.slow_clients import SlowClients
from tests.pasarguard.panel_client import pasarguard_section, wait_tls_port
from tests.support.node import NodeProcess, free_tcp_port, http

SLOW = 300
ANSWER_WITHIN = 1.0
TRICKLE_SECONDS = http_worker.HEAD_DEADLINE + 4


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("slow-clients")
    ts_port = free_tcp_port()
    section = pasarguard_section(grpc=False)
    n = NodeProcess(tmp, {"trafficStats": {"listen": f"127.0.0.1:{ts_port}", "secret": "s3"},
                          "pasarguard": section})
    n.start()
    n.ts_port = ts_port
    n.pg_port = int(section["listen"].rsplit(":", 1)[1])
    n.pg_key = section["apiKey"]
    try:
        wait_tls_port(n.pg_port, node=n)
        yield n
    finally:
        n.stop()


def timed(fn):
    def probe():
        t0 = time.monotonic()
        try:
            status = fn()
        except OSError as exc:
            return None, repr(exc)
        return time.monotonic() - t0, status
    return probe


def check(results, what):
    assert results, f"no {what} probe ran"
    slow = [r for r in results if r[0] is None or r[0] > ANSWER_WITHIN or r[1] != 200]
    assert not slow, f"{what}: {len(slow)} of {len(results)} probes late or failed: {slow[:5]}"


def check_dropped(report, deadline):
    assert report.opened == SLOW, report
    # All trickling connections were closed by the server, a little after the head deadline.
    assert report.still_open == 0, f"{report.still_open} trickling connections still open"
    assert min(report.closed_by_server) >= deadline - 1.5, sorted(report.closed_by_server)[:3]
    assert max(report.closed_by_server) <= deadline + 3.0, sorted(report.closed_by_server)[-3:]


def test_native_api_answers_while_300_clients_trickle_headers(node):
    def health():
        return http("GET", node.base_url + "/api/v1/health", timeout=3).status

    def traffic_stats():
        return http("GET", f"http://127.0.0.1:{node.ts_port}/traffic",
                    headers={"Authorization": "s3"}, timeout=3).status

    both = timed(lambda: max(health(), traffic_stats()))
    report, results = asyncio.run(SlowClients(node.control_port, SLOW).run(TRICKLE_SECONDS, both))
    check(results, "health + traffic stats")
    check_dropped(report, http_worker.HEAD_DEADLINE)
    assert "did not send a whole request in time" in (node.data_dir / "node.log").read_text()


def test_stream_api_answers_while_300_clients_trickle_headers(node):
    probe = timed(lambda: http("GET", node.base_url + "/health", timeout=3).status)
    report, results = asyncio.run(
        SlowClients(node.control_port, SLOW, path="/streams").run(TRICKLE_SECONDS, probe))
    check(results, "stream API /health")
    check_dropped(report, http_worker.HEAD_DEADLINE)


def test_traffic_stats_listener_answers_while_its_port_trickles(node):
    probe = timed(lambda: http("GET", f"http://127.0.0.1:{node.ts_port}/online",
                               headers={"Authorization": "s3"}, timeout=3).status)
    report, results = asyncio.run(
        SlowClients(node.ts_port, SLOW, path="/traffic").run(TRICKLE_SECONDS, probe))
    check(results, "traffic stats /online")
    check_dropped(report, http_worker.HEAD_DEADLINE)


def test_a_slow_body_is_dropped_by_the_request_deadline(node):
    """A declared body that trickles holds no thread and is closed by the request deadline;
    a whole body that arrives slowly but in time is served."""
    with socket.create_connection(("127.0.0.1", node.control_port)) as slow:
        slow.sendall(b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nContent-Length: 100000\r\n\r\n{")
        t0 = time.monotonic()
        slow.settimeout(http_worker.REQUEST_DEADLINE + 5)
        # Meanwhile the API answers.
        assert http("GET", node.base_url + "/api/v1/health", timeout=2).status == 200
        answer = slow.recv(4096)
        took = time.monotonic() - t0
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert http_worker.REQUEST_DEADLINE - 2 <= took <= http_worker.REQUEST_DEADLINE + 3, took


def test_oversized_heads_and_bodies_are_refused(node):
    with socket.create_connection(("127.0.0.1", node.control_port), timeout=5) as s:
        s.sendall(b"GET /api/v1/health HTTP/1.1\r\n" + b"X-Big: " + b"a" * (http_worker.MAX_HEAD + 10))
        assert s.recv(4096).startswith(b"HTTP/1.1 431")
    with socket.create_connection(("127.0.0.1", node.control_port), timeout=5) as s:
        s.sendall(b"POST /api/v1/users HTTP/1.1\r\nContent-Length: %d\r\n\r\n"
                  % (http_worker.MAX_PREREAD + 1))
        assert s.recv(4096).startswith(b"HTTP/1.1 413")


def read_answers(sock, n: int, timeout: float = 5.0) -> list[bytes]:
    """Read ``n`` whole HTTP answers (Content-Length framed) from ``sock``."""
    got, answers = b"", []
    deadline = time.monotonic() + timeout
    while len(answers) < n and time.monotonic() < deadline:
        end = got.find(b"\r\n\r\n")
        if end >= 0:
            head = got[:end].decode("latin-1")
            length = int(next(line.split(":", 1)[1] for line in head.split("\r\n")
                              if line.lower().startswith("content-length:")))
            if len(got) >= end + 4 + length:
                answers.append(got[:end + 4 + length])
                got = got[end + 4 + length:]
                continue
        got += sock.recv(65536)
    return answers


def test_keepalive_and_pipelined_requests_still_work(node):
    with socket.create_connection(("127.0.0.1", node.control_port), timeout=5) as s:
        req = b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
        s.sendall(req + req)          # two pipelined requests
        answers = read_answers(s, 2)
        assert [a[:12] for a in answers] == [b"HTTP/1.1 200"] * 2, answers
        s.sendall(req)                # a third one on the kept-alive connection
        assert read_answers(s, 1)[0].startswith(b"HTTP/1.1 200")


def test_pasarguard_port_answers_while_300_clients_trickle_headers(node):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    def info():
        with socket.create_connection(("127.0.0.1", node.pg_port), timeout=3) as raw:
            with ctx.wrap_socket(raw) as s:
                s.sendall(f"GET /info HTTP/1.1\r\nHost: x\r\nx-api-key: {node.pg_key}\r\n"
                          f"Connection: close\r\n\r\n".encode())
                head = s.recv(4096)
        return int(head.split(b" ", 2)[1])

    report, results = asyncio.run(
        SlowClients(node.pg_port, SLOW, path="/info", tls=True).run(TRICKLE_SECONDS, timed(info)))
    check(results, "PasarGuard /info")
    assert report.opened == SLOW, report
