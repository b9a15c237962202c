"""The wire edges the panel's client cannot produce: missing or malformed keys, malformed
protobuf, unknown stat types, missing emails, chunk framing and order, calls before Start.
Each is refused with a 4xx (or the reference's 500 "backend not initialized") and a message,
and nothing is applied.  REST over TLS with ``http.client``, gRPC with grpcio."""
from __future__ import annotations

import http.client
import ssl
import uuid

import grpc
import pytest

from fastpath.control.pasarguard import service_pb2 as pb
from fastpath.control.pasarguard import service_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration]

PROTOBUF = {"Content-Type": "application/x-protobuf"}


class Rest:
    def __init__(self, face):
        self.face = face
        self.ctx = ssl.create_default_context(cafile=str(face.ca_path))   # host name checked too

    def request(self, method, path, body=b"", key="default", headers=None):
        conn = http.client.HTTPSConnection("127.0.0.1", self.face.rest_port, context=self.ctx, timeout=15)
        h = dict(PROTOBUF, **(headers or {}))
        if key == "default":
            key = self.face.api_key
        if key is not None:
            h["x-api-key"] = key
        try:
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()


def frame(chunk: pb.UsersChunk) -> bytes:
    data = chunk.SerializeToString()
    n, out = len(data), bytearray()
    while True:
        if n < 0x80:
            out.append(n)
            break
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(out) + data


def user(email, auth, inbounds=("hysteria2",)):
    return pb.User(email=email, proxies=pb.Proxy(hysteria=pb.Hysteria(auth=auth)), inbounds=list(inbounds))


def pasarguard_users(face):
    return {u.id: u.auth_secret for u in face.store().list_users(source="pasarguard")}


@pytest.fixture
def rest(face_node):
    return Rest(face_node)


@pytest.fixture
def stub(face_node):
    creds = grpc.ssl_channel_credentials(root_certificates=face_node.ca_path.read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{face_node.grpc_port}", creds) as channel:
        yield pb_grpc.NodeServiceStub(channel), channel


def md(face):
    return (("x-api-key", face.api_key),)


def started(rest, users=()):
    status, body = rest.request("POST", "/start", pb.Backend(users=list(users)).SerializeToString())
    assert status == 200, body
    return pb.BaseInfoResponse.FromString(body)


# -- keys ----------------------------------------------------------------------------------------
def test_rest_key_statuses(rest):
    assert rest.request("GET", "/info", key=None) == (401, b"missing x-api-key header\n")
    assert rest.request("GET", "/info", key="not-a-uuid")[0] == 422
    assert rest.request("GET", "/info", key=str(uuid.uuid4()))[0] == 403
    status, body = rest.request("GET", "/info", key=rest.face.api_key.upper())
    assert status == 200 and pb.BaseInfoResponse.FromString(body).node_version
    assert rest.request("GET", "/logs", key=None)[0] == 401
    assert rest.request("GET", "/nowhere")[0] == 404


def test_grpc_key_statuses(face_node, stub):
    s, _channel = stub
    cases = [((), grpc.StatusCode.UNAUTHENTICATED), ((("x-api-key", "nope"),), grpc.StatusCode.INVALID_ARGUMENT),
             ((("x-api-key", str(uuid.uuid4())),), grpc.StatusCode.PERMISSION_DENIED)]
    for metadata, code in cases:
        with pytest.raises(grpc.RpcError) as err:
            s.GetBaseInfo(pb.Empty(), metadata=metadata, timeout=10)
        assert err.value.code() == code
        with pytest.raises(grpc.RpcError) as err:
            next(iter(s.GetLogs(pb.Empty(), metadata=metadata, timeout=10)))
        assert err.value.code() == code
    assert s.GetBaseInfo(pb.Empty(), metadata=md(face_node), timeout=10).core_version


# -- before Start --------------------------------------------------------------------------------
def test_routes_before_start_answer_backend_not_initialized(face_node, rest, stub):
    started(rest)
    assert rest.request("PUT", "/stop")[0] == 200
    for method, path in [("GET", "/stats"), ("GET", "/stats/system"), ("GET", "/stats/backend"),
                         ("GET", "/stats/user/online"), ("PUT", "/users/sync"), ("PUT", "/stop"),
                         ("GET", "/logs"), ("PUT", "/users/sync/chunked")]:
        assert rest.request(method, path) == (500, b"backend not initialized\n"), path
    status, body = rest.request("GET", "/info")
    assert status == 200 and pb.BaseInfoResponse.FromString(body).started is False
    s, _ = stub
    with pytest.raises(grpc.RpcError) as err:
        s.GetStats(pb.StatRequest(type=pb.UsersStat), metadata=md(face_node), timeout=10)
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.INTERNAL, "backend not initialized")
    assert s.GetBaseInfo(pb.Empty(), metadata=md(face_node), timeout=10).started is False


# -- malformed requests: 4xx with a message, nothing applied ------------------------------------
def test_bad_protobuf_applies_nothing(face_node, rest, stub):
    started(rest, [user("a1", "sa1")])
    status, body = rest.request("POST", "/start", b"\xff\xff\xff")
    assert status == 400 and b"failed to decode Backend" in body
    status, body = rest.request("PUT", "/users/sync", b"\x0a\x05\x0a\x03")     # truncated User
    assert status == 400 and body.strip()
    assert pasarguard_users(face_node) == {"a1": "sa1"}
    s, channel = stub
    raw = channel.unary_unary("/service.NodeService/SyncUsers")
    with pytest.raises(grpc.RpcError) as err:
        raw(b"\xff\xff", metadata=md(face_node), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "decode" in err.value.details()
    assert pasarguard_users(face_node) == {"a1": "sa1"}


def test_unknown_stat_type(face_node, rest, stub):
    started(rest)
    status, body = rest.request("GET", "/stats", pb.StatRequest(type=42).SerializeToString())
    assert (status, body) == (400, b"unknown stat type 42\n")
    s, _ = stub
    with pytest.raises(grpc.RpcError) as err:
        s.GetStats(pb.StatRequest(type=42), metadata=md(face_node), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_missing_email_applies_nothing(face_node, rest, stub):
    started(rest, [user("a1", "sa1")])
    body = pb.Users(users=[user("b1", "sb1"), user("", "nobody")]).SerializeToString()
    status, text = rest.request("PUT", "/users/sync", body)
    assert status == 400 and b"has no email" in text
    status, _ = rest.request("PUT", "/user/sync", user("", "x").SerializeToString())
    assert status == 400
    s, _ = stub
    with pytest.raises(grpc.RpcError) as err:
        s.SyncUser(iter([user("c1", "sc1"), user("", "y")]), metadata=md(face_node), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    users = pasarguard_users(face_node)
    assert users.pop("c1", None) in (None, "sc1")      # a stream applies each user as it comes
    assert users == {"a1": "sa1"}
    status, text = rest.request("POST", "/start", pb.Backend(users=[user("", "z")]).SerializeToString())
    assert status == 400 and pasarguard_users(face_node).keys() <= {"a1", "c1"}


# -- chunked sync ---------------------------------------------------------------------------------
def test_chunked_sync_orders_by_index(face_node, rest):
    started(rest, [user("a1", "sa1")])
    frames = [frame(pb.UsersChunk(index=1, users=[user("c1", "second")])),
              frame(pb.UsersChunk(index=0, users=[user("c1", "first"), user("d1", "sd1")])),
              frame(pb.UsersChunk(index=2, last=True, users=[user("a1", "", inbounds=[])]))]
    status, body = rest.request("PUT", "/users/sync/chunked", iter(frames))   # chunked body
    assert status == 200 and pb.Empty.FromString(body) == pb.Empty()
    assert pasarguard_users(face_node) == {"c1": "second", "d1": "sd1"}


@pytest.mark.parametrize("frames, message", [
    ([frame(pb.UsersChunk(index=0, users=[user("x1", "sx1")])),
      frame(pb.UsersChunk(index=2, last=True, users=[user("y1", "sy1")]))], b"missing chunk index 1\n"),
    ([frame(pb.UsersChunk(index=0, users=[user("x1", "sx1")]))], b"missing final chunk indicator\n"),
    ([frame(pb.UsersChunk(index=0, last=True))], b"no users received\n"),
    ([b"\x10\x01\x02"], b"failed to read chunk payload: body ended inside a chunk\n"),
    ([b"\x05\xff\xff\xff\xff\xff"], None),
])
def test_chunked_sync_refusals(face_node, rest, frames, message):
    started(rest, [user("a1", "sa1")])
    status, body = rest.request("PUT", "/users/sync/chunked", b"".join(frames))
    assert status == 400
    if message is not None:
        assert body == message
    assert pasarguard_users(face_node) == {"a1": "sa1"}


def test_grpc_chunked_missing_chunk(face_node, rest, stub):
    started(rest, [user("a1", "sa1")])
    s, _ = stub
    chunks = [pb.UsersChunk(index=0, users=[user("x1", "sx1")]),
              pb.UsersChunk(index=2, last=True, users=[user("y1", "sy1")])]
    with pytest.raises(grpc.RpcError) as err:
        s.SyncUsersChunked(iter(chunks), metadata=md(face_node), timeout=10)
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "missing chunk index 1")
    ok = [pb.UsersChunk(index=1, last=True, users=[user("y1", "sy1")]),
          pb.UsersChunk(index=0, users=[user("x1", "sx1")])]
    with pytest.raises(grpc.RpcError):
        s.SyncUsersChunked(iter(ok), metadata=md(face_node), timeout=10)   # the last chunk must come last
    s.SyncUsersChunked(iter(reversed(ok)), metadata=md(face_node), timeout=10)
    assert pasarguard_users(face_node) == {"a1": "sa1", "x1": "sx1", "y1": "sy1"}


def test_start_replaces_the_user_set(face_node, rest):
    started(rest, [user("a1", "sa1"), user("b1", "sb1")])
    info = started(rest, [user("b1", "sb1-new"), user("e1", "se1", inbounds=[])])
    assert info.started and info.core_version and info.node_version
    assert pasarguard_users(face_node) == {"b1": "sb1-new"}


def test_clash_with_a_user_of_another_face_applies_nothing(face_node, rest):
    from fastpath.store import User
    started(rest, [user("a1", "sa1")])
    store = face_node.store()
    store.create_user(User(id="operator", auth_secret="operator-secret", source="native"))
    try:
        for users in ([user("b1", "operator-secret")], [user("operator", "x")]):
            status, body = rest.request("PUT", "/users/sync", pb.Users(users=users).SerializeToString())
            assert status == 500 and body.startswith(b"failed to update users: ")
            status, _ = rest.request("PUT", "/user/sync", users[0].SerializeToString())
            assert status == 500
        assert pasarguard_users(face_node) == {"a1": "sa1"}
        assert store.get_user("operator").auth_secret == "operator-secret"
    finally:
        store.delete_user("operator")


def test_keep_alive_keeps_users_when_the_panel_goes_away(face_node, rest):
    """The reference stops its core after keep_alive seconds of silence; here users keep their
    service, the silence is logged, and Info says so."""
    import time
    backend = pb.Backend(users=[user("k1", "sk1")], keep_alive=1)
    status, _ = rest.request("POST", "/start", backend.SerializeToString())
    assert status == 200
    log = face_node.node.data_dir / "node.log"
    deadline = time.monotonic() + 10
    while "no request from the panel" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "users keep their service" in log.read_text()
    assert pasarguard_users(face_node) == {"k1": "sk1"}
    status, body = rest.request("GET", "/info")
    info = pb.BaseInfoResponse.FromString(body)
    assert info.started and "keep_alive 1s: users stay served while the panel is away" in info.core_version
    deadline = time.monotonic() + 5
    while "the panel is back" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "the panel is back" in log.read_text()
    started(rest, [user("a1", "sa1")])     # keep_alive off again for the other tests


# -- message size and the key before the body (issue 19) ----------------------------------------
class CountingProxy:
    """A TCP relay between the gRPC client and the node that counts the bytes the node
    accepted from the client (TLS passes through untouched)."""

    def __init__(self, target_port: int):
        import socket
        import threading
        self.target = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.upstream_bytes = 0
        self.lock = threading.Lock()
        self.threads = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        import threading
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            for src, dst, count in ((client, server, True), (server, client, False)):
                t = threading.Thread(target=self._pump, args=(src, dst, count), daemon=True)
                t.start()
                self.threads.append(t)

    def _pump(self, src, dst, count):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                if count:
                    with self.lock:
                        self.upstream_bytes += len(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(2)
                except OSError:
                    pass

    def close(self):
        self.sock.close()


def test_grpc_refuses_a_big_message_without_the_key_before_reading_it(face_node):
    """A 15 MiB SyncUsers with a wrong or missing key is refused without the node taking in
    the message (it used to read all of it, up to 64 MiB, first): the relay in between
    forwards what HTTP/2 flow control lets through before the refusal (about 4 MiB measured
    here, 15.7 MiB without the interceptor).  With the key, the same message is read."""
    import time
    payload = pb.StatRequest(name="x" * (15 * 1024 * 1024)).SerializeToString()
    creds = grpc.ssl_channel_credentials(root_certificates=face_node.ca_path.read_bytes())
    for metadata, code in (((), grpc.StatusCode.UNAUTHENTICATED),
                           ((("x-api-key", str(uuid.uuid4())),), grpc.StatusCode.PERMISSION_DENIED)):
        proxy = CountingProxy(face_node.grpc_port)
        try:
            with grpc.secure_channel(f"127.0.0.1:{proxy.port}", creds,
                                     options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
                call = channel.unary_unary("/service.NodeService/GetStats")
                with pytest.raises(grpc.RpcError) as err:
                    call(payload, metadata=metadata, timeout=20)
                assert err.value.code() == code, err.value
                time.sleep(0.5)
        finally:
            proxy.close()
        assert proxy.upstream_bytes < 8 * 1024 * 1024, proxy.upstream_bytes
    # With the key the message is read in full (and answered by the handler, not the limit).
    proxy = CountingProxy(face_node.grpc_port)
    try:
        with grpc.secure_channel(f"127.0.0.1:{proxy.port}", creds,
                                 options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
            call = channel.unary_unary("/service.NodeService/GetStats")
            try:
                call(payload, metadata=md(face_node), timeout=30)
            except grpc.RpcError as exc:
                assert exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED, exc
            time.sleep(0.5)
    finally:
        proxy.close()
    assert proxy.upstream_bytes > 15 * 1024 * 1024


def test_grpc_unary_limit_is_16_mib(face_node, stub):
    """The largest real request (Start or SyncUsers with every user, ~340 bytes a user) fits
    16 MiB; a larger one is RESOURCE_EXHAUSTED, even with the key (chunked sync is for more)."""
    from fastpath.control.pasarguard.grpc_service import MAX_MESSAGE
    assert MAX_MESSAGE == 16 * 1024 * 1024
    creds = grpc.ssl_channel_credentials(root_certificates=face_node.ca_path.read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{face_node.grpc_port}", creds,
                             options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        call = channel.unary_unary("/service.NodeService/GetStats")
        with pytest.raises(grpc.RpcError) as err:
            call(pb.StatRequest(name="x" * (17 * 1024 * 1024)).SerializeToString(),
                 metadata=md(face_node), timeout=30)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
