"""Every body type is read up to the cap and no further, authenticated or not."""
from __future__ import annotations

import socket
import time

import msgpack

from tests.security.conftest import AUTH, raw_request

CAP = 8 * 1024 * 1024


def test_a_huge_msgpack_login_is_refused_by_its_length(exposed):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", exposed.control_port), timeout=10) as s:
        s.sendall(b"POST /scale/api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n"
                  b"Content-Length: 52428800\r\nConnection: close\r\n\r\n")
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
    assert time.monotonic() - started < 5


def test_small_msgpack_body_declaring_a_huge_array_is_a_clean_400(exposed):
    hostile = b"\xdd\xff\xff\xff\xff"          # array32 of 4 Gi elements, then nothing
    r = raw_request(exposed, "POST", "/api/v1/users", hostile,
                    {"Content-Type": "application/msgpack", **AUTH})
    assert r.status == 400
    assert "msgpack" in r.text


def test_valid_msgpack_still_works(exposed):
    body = msgpack.packb({"id": "packed-user"})
    r = raw_request(exposed, "POST", "/api/v1/users", body, {"Content-Type": "application/msgpack", **AUTH})
    assert r.status in (200, 201), r.text
    assert raw_request(exposed, "GET", "/api/v1/users/packed-user", headers=AUTH).status == 200
