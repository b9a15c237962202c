"""Property test of the failover resolver's answer handling, over real HTTP on loopback: whatever a
resolver answers (status, bytes, JSON of any shape, next_url of any kind), ``ask`` gives a URL
the outbound rule allows, None, or a ResolverError, and ``resolve`` never raises."""
from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastpath.media import failover_resolver, outbound

URLS = st.sampled_from([
    "http://127.0.0.1:9/ok.ts", "https://[::1]:9/ok.ts", "http://169.254.169.254/meta",
    "http://0.0.0.0/x", "http://10.0.0.1/private", "http://[fe80::1]/ll", "ftp://127.0.0.1/x",
    "http://", "http:///nohost", "http://127.0.0.1:99999/badport", "http://127.0.0.1/sp ace",
    "http://127.0.0.1/" + "a" * 5000, "", "javascript:alert(1)"])
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                       max_leaves=8)
ANSWERS = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda u: json.dumps({"next_url": u}).encode(), URLS | JSONISH),
    st.builds(lambda d: json.dumps(d).encode(), JSONISH),
    st.just(b"{" * 2000),
    st.just(b'{"next_url": "http://127.0.0.1:9/ok.ts", "pad": "' + b"x" * 70_000 + b'"}'))


class Scripted:
    """A resolver on loopback that answers whatever the test sets."""

    def __init__(self):
        self.status, self.body = 200, b"{}"
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/next"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def scripted():
    s = Scripted()
    yield s
    s.server.shutdown()
    s.server.server_close()


POLICY = outbound.OutboundPolicy(allow_networks=["127.0.0.0/8", "::1/128"])


async def _ask(url: str):
    async with aiohttp.ClientSession(connector=outbound.connector(POLICY)) as session:
        body = failover_resolver.request_body("http://127.0.0.1:9/a.ts", {"k": "v"}, 0)
        try:
            got = await failover_resolver.ask(session, POLICY, url, body)
        except failover_resolver.ResolverError as exc:
            got = exc
        resolved = await failover_resolver.resolve(session, POLICY, "s", url, body, timeout=5)
    return got, resolved


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from([200, 201, 204, 301, 404, 500]), ANSWERS)
def test_any_answer_is_a_url_none_or_a_resolver_error(scripted, status, body):
    scripted.status, scripted.body = status, body
    got, resolved = asyncio.run(_ask(scripted.url))
    if isinstance(got, str):
        assert 200 <= status < 300
        assert POLICY.refusal_for_url(got) is None and got.startswith(("http://", "https://"))
        assert resolved == got
    else:
        assert got is None or isinstance(got, failover_resolver.ResolverError)
        assert resolved is None
    if status >= 300:
        assert isinstance(got, failover_resolver.ResolverError)


def test_a_refused_resolver_is_not_called():
    got, resolved = asyncio.run(_ask("http://169.254.169.254/next"))
    assert isinstance(got, failover_resolver.ResolverError) and "cloud metadata" in str(got)
    assert resolved is None
