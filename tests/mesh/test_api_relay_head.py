"""The remote-UI gateway's request check (``fastpath.mesh.api_relay.check_request``), fuzzed:
whatever the head, it is refused with a status and a message, or let through as exactly one
``/scale/`` request with our framing (one Host, one Content-Length, Connection: close, the
tunnel mark) and none of the caller's framing headers."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from fastpath.mesh.api_relay import MAX_BODY, ApiRelayError, check_request

NAMES = st.sampled_from(["Host", "Content-Length", "Connection", "Transfer-Encoding", "X-Hy2scale-Proxy",
                         "Authorization", "Accept", "Upgrade", "Expect", "bad name", "", "X-A"])
VALUES = st.one_of(st.sampled_from(["0", "12", "close", "keep-alive", "true", "false", "chunked",
                                    str(MAX_BODY + 1), "-1", "1e3"]),
                   st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=20))
TARGETS = st.one_of(st.sampled_from(["/scale/", "/scale", "/scale/api/node?x=1", "/scale/../api/v1/users",
                                     "/scale/%2e%2e/api", "/scale/remote/b/scale/", "/api/v1/users",
                                     "http://x/scale/", "/scale//x", "/scale/a#b", "*"]),
                    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30).map(lambda t: "/scale/" + t))
METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "TRACE", "CONNECT", "get"])


def head_of(method, target, version, headers) -> bytes:
    lines = [f"{method} {target} {version}"] + [f"{n}: {v}" for n, v in headers]
    return "\r\n".join(lines).encode("latin-1")


@settings(max_examples=600, deadline=None)
@given(METHODS, TARGETS, st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "http/1.1"]),
       st.lists(st.tuples(NAMES, VALUES), max_size=6))
def test_a_head_is_refused_with_a_reason_or_passed_on_as_one_request(method, target, version, headers):
    try:
        out, length = check_request(head_of(method, target, version, headers))
    except ApiRelayError as exc:
        assert 400 <= exc.status < 600 and str(exc)
        return
    assert out.endswith(b"\r\n\r\n") and out.count(b"\r\n\r\n") == 1
    lines = out[:-4].decode("latin-1").split("\r\n")
    assert lines[0] == f"{method} {target} HTTP/1.1"
    path = target.partition("?")[0]
    assert path == "/scale" or path.startswith("/scale/")
    assert "/.." not in path and not path.startswith("/scale/remote")
    names = [line.partition(":")[0].lower() for line in lines[1:]]
    for framing in ("host", "content-length", "connection", "x-hy2scale-proxy"):
        assert names.count(framing) == 1, (framing, lines)
    assert "transfer-encoding" not in names and "upgrade" not in names and "expect" not in names
    assert "Connection: close" in lines and "X-Hy2scale-Proxy: true" in lines
    assert f"Content-Length: {length}" in lines and 0 <= length <= MAX_BODY
    assert all("\n" not in line and "\r" not in line for line in lines)


def test_known_refusals():
    cases = {b"GET /api/v1/users HTTP/1.1": 403, b"GET /scale/remote/b/scale/ HTTP/1.1": 403,
             b"GET /scale/../api/v1/users HTTP/1.1": 400, b"GET /scale/%2E%2E/x HTTP/1.1": 400,
             b"POST /scale/api/login HTTP/1.1\r\nTransfer-Encoding: chunked": 411,
             b"POST /scale/api/restore HTTP/1.1\r\nContent-Length: %d" % (MAX_BODY + 1): 413,
             b"POST /scale/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2": 400,
             b"TRACE /scale/ HTTP/1.1": 405, b"GET /scale/ HTTP/1.1\r\n folded": 400,
             b"GET /scale/ HTTP/1.1\r\nX: a\x00b": 400, b"GET http://h/scale/ HTTP/1.1": 400}
    for head, status in cases.items():
        try:
            check_request(head)
        except ApiRelayError as exc:
            assert exc.status == status, (head, exc.status, exc)
        else:
            raise AssertionError(f"{head!r} was let through")
