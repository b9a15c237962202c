"""Server and client config shapes, the auth backends' id rules, the masquerade modes, and
Brutal's arithmetic: the parts with no socket in them."""
from __future__ import annotations

import asyncio
import json
import stat
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from fastpath.config.fields import ConfigError
from fastpath.hy2.server.auth_backends import (CommandAuth, HttpAuth, NodeAuthenticator, PasswordAuth,
                                        UserpassAuth)
from fastpath.hy2.quic.brutal import BrutalCongestionControl, INITIAL_WINDOW
from fastpath.hy2.config import parse_client_config, parse_server_config
from fastpath.hy2.server.masquerade import FileMasquerade, NotFoundMasquerade, StringMasquerade

REFERENCE_SERVER = {
    "listen": ":443",
    "obfs": {"type": "salamander", "salamander": {"password": "cry_me_a_r1ver"}},
    "quic": {"initStreamReceiveWindow": 8388608, "maxStreamReceiveWindow": 8388608,
             "initConnReceiveWindow": 20971520, "maxConnReceiveWindow": 20971520,
             "maxIdleTimeout": "30s", "maxIncomingStreams": 1024,
             "disablePathMTUDiscovery": False},
    "bandwidth": {"up": "1 gbps", "down": "1 gbps"},
    "ignoreClientBandwidth": False,
    "speedTest": True,
    "disableUDP": False,
    "udpIdleTimeout": "60s",
    "auth": {"type": "userpass", "userpass": {"Alice": "pw1", "bob": "pw2"}},
    "masquerade": {"type": "string", "string": {"content": "hello", "headers": {"X-A": "b"},
                                                 "statusCode": 200}},
}


def test_reference_server_config_is_accepted_unchanged():
    s = parse_server_config(REFERENCE_SERVER)
    assert s.listen == ("0.0.0.0", 443)
    assert s.obfs_password == "cry_me_a_r1ver"
    assert s.bandwidth_up == 125_000_000 and s.quic.max_idle_timeout == 30
    assert s.auth.userpass == {"alice": "pw1", "bob": "pw2"}
    assert s.udp_idle_timeout == 60 and s.speed_test


def test_defaults_listen_on_8443_with_the_nodes_certificate(tmp_path):
    s = parse_server_config(None)
    assert s.listen == ("0.0.0.0", 8443)
    assert s.tls_files(tmp_path) == (str(tmp_path / "tls" / "node.crt"), str(tmp_path / "tls" / "node.key"))


@pytest.mark.parametrize("raw, key", [
    ({"lsiten": ":443"}, "lsiten"),
    ({"bandwidth": {"up": "100"}}, "bandwidth.up"),
    ({"bandwidth": {"up": "100 parsecs"}}, "bandwidth.up"),
    ({"udpIdleTimeout": "1s"}, "udpIdleTimeout"),
    ({"udpIdleTimeout": "601s"}, "udpIdleTimeout"),
    ({"quic": {"maxIdleTimeout": "1s"}}, "quic.maxIdleTimeout"),
    ({"quic": {"bogus": 1}}, "quic.bogus"),
    ({"obfs": {"type": "salamander", "salamander": {"password": "abc"}}}, "obfs.salamander.password"),
    ({"auth": {"type": "ldap"}}, "auth.type"),
    ({"auth": {"type": "password"}}, "auth.password"),
    ({"masquerade": {"type": "file", "file": {"dir": "/nonexistent/dir"}}}, "masquerade.file.dir"),
    ({"tls": {"cert": "/nonexistent.crt", "key": "/nonexistent.key"}}, "tls.cert"),
    ({"disableUDP": "yes"}, "disableUDP"),
])
def test_bad_keys_are_refused_naming_the_key(raw, key):
    with pytest.raises(ConfigError) as err:
        parse_server_config(raw)
    assert str(err.value).startswith(key + ":")
    assert "\n" not in str(err.value)


def test_reference_client_config_is_accepted():
    c = parse_client_config({
        "server": "example.com:8443", "auth": "pw",
        "tls": {"sni": "example.com", "insecure": False, "pinSHA256": "AB:" * 31 + "AB"},
        "obfs": {"type": "salamander", "salamander": {"password": "cry_me_a_r1ver"}},
        "quic": {"maxIdleTimeout": "30s", "keepAlivePeriod": "10s"},
        "bandwidth": {"up": "20 mbps", "down": "100 mbps"},
        "socks5": {"listen": "127.0.0.1:1080"}, "http": {"listen": "127.0.0.1:8080"},
        "tcpForwarding": [{"listen": "127.0.0.1:6600", "remote": "127.0.0.1:22"}],
        "udpForwarding": [{"listen": "127.0.0.1:5300", "remote": "8.8.8.8:53", "timeout": "20s"}],
    })
    assert (c.server_host, c.server_port) == ("example.com", 8443)
    assert c.bandwidth_down == 12_500_000 and c.pin_sha256 == "ab" * 32
    assert c.udp_forwarding[0].timeout == 20 and c.quic.keep_alive_period == 10
    with pytest.raises(ConfigError, match="^tun:"):
        parse_client_config({"server": "a:1", "tun": {"name": "x"}})


def test_client_parrots_chrome_unless_told_not_to():
    base = {"server": "a:1", "socks5": {"listen": "127.0.0.1:1080"}}
    q = parse_client_config(base).quic
    assert q.chrome_parrot and (q.init_stream_window, q.init_conn_window) == (6 << 20, 15 << 20)
    assert (q.max_stream_window, q.max_conn_window) == (8 << 20, 20 << 20)
    q = parse_client_config({**base, "quic": {"disableChromeParrot": True}}).quic
    assert not q.chrome_parrot and (q.init_stream_window, q.init_conn_window) == (8 << 20, 20 << 20)
    q = parse_client_config({**base, "quic": {"initStreamReceiveWindow": 1 << 20}}).quic
    assert q.chrome_parrot and (q.init_stream_window, q.init_conn_window) == (1 << 20, 15 << 20)
    with pytest.raises(ConfigError, match="^quic.disableChromeParrot:"):
        parse_client_config({**base, "quic": {"disableChromeParrot": "maybe"}})
    with pytest.raises(ConfigError, match="^quic.disableChromeParrot:"):   # a client key only
        parse_server_config({"listen": ":1", "quic": {"disableChromeParrot": True}})


def run(coro):
    return asyncio.run(coro)


def test_password_and_userpass_id_rules():
    assert run(PasswordAuth("pw").authenticate("1.2.3.4:5", "pw", 0)) == "user"
    assert run(PasswordAuth("pw").authenticate("1.2.3.4:5", "pW", 0)) is None
    up = UserpassAuth({"Alice": "Secret:with:colons"})
    assert run(up.authenticate("a", "ALICE:Secret:with:colons", 0)) == "alice"
    assert run(up.authenticate("a", "alice:wrong", 0)) is None
    assert run(up.authenticate("a", "alice", 0)) is None


def _script(tmp_path, body: str):
    script = tmp_path / "auth.sh"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_command_backend_reads_the_auth_string_on_stdin(tmp_path):
    """The auth string is one line on stdin; argv is ``addr - tx`` (issue 19: argv is readable
    by every local user, and a leading ``-`` would be an option).  The id is trimmed stdout."""
    seen = tmp_path / "argv.txt"
    cmd = CommandAuth(_script(tmp_path, f'echo "$@" >> {seen}\nIFS= read -r auth\n'
                                        '[ "$auth" = "good" ] || [ "$auth" = "-n --help" ] || exit 1\n'
                                        'echo "  id-of-$1-$auth  "\n'))
    assert run(cmd.authenticate("1.2.3.4:5", "good", 10)) == "id-of-1.2.3.4:5-good"
    assert run(cmd.authenticate("1.2.3.4:5", "bad", 10)) is None
    # A leading dash is data, not an option of the program.
    assert run(cmd.authenticate("1.2.3.4:5", "-n --help", 10)) == "id-of-1.2.3.4:5--n --help"
    assert seen.read_text().splitlines() == ["1.2.3.4:5 - 10"] * 3
    assert run(CommandAuth(str(tmp_path / "missing")).authenticate("a", "b", 0)) is None
    # A program that never reads stdin is no error: its exit status decides.
    assert run(CommandAuth(_script(tmp_path, "echo ok\n")).authenticate("a", "x" * 200_000, 0)) == "ok"


def test_command_backend_argv_as_the_reference_on_request(tmp_path):
    cmd = CommandAuth(_script(tmp_path, '[ "$2" = "good" ] && { echo "  id-of-$1  "; exit 0; }\nexit 1\n'),
                      argv=True)
    assert run(cmd.authenticate("1.2.3.4:5", "good", 10)) == "id-of-1.2.3.4:5"
    assert run(cmd.authenticate("1.2.3.4:5", "bad", 10)) is None
    cfg = parse_server_config({"listen": ":1", "auth": {"type": "command", "command": "/bin/true",
                                                        "commandArgv": True}})
    assert cfg.auth.command_argv is True
    assert parse_server_config({"listen": ":1", "auth": {"type": "command",
                                                         "command": "/bin/true"}}).auth.command_argv is False


def test_http_backend_accepts_only_200_ok_true():
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            if body["auth"] == "good":
                out, code = {"ok": True, "id": "carol"}, 200
            elif body["auth"] == "teapot":
                out, code = {"ok": True, "id": "x"}, 418
            else:
                out, code = {"ok": False}, 200
            data = json.dumps(out).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/auth"

    async def main():
        backend = HttpAuth(url)
        try:
            return [await backend.authenticate("9.9.9.9:1", a, 123) for a in ("good", "bad", "teapot")]
        finally:
            await backend.close()

    try:
        assert run(main()) == ["carol", None, None]
        assert seen[0] == {"addr": "9.9.9.9:1", "auth": "good", "tx": 123}
    finally:
        httpd.shutdown()


class FakeUsers:
    def __init__(self, users):
        self.users = users

    def authenticate(self, secret, inbound=None):
        for uid, (sec, reason) in self.users.items():
            if sec == secret:
                return type("U", (), {"id": uid})(), reason
        return None, "unknown credentials"

    def refused_reason(self, uid):
        return self.users.get(uid, (None, None))[1]

    def device_refused(self, uid, addr):
        return False                # no device kicked (UserDirectory's check is tested apart)


def test_user_table_decides_first_then_the_backend():
    users = FakeUsers({"tab": ("s1", None), "off": ("s2", "disabled"), "user": ("zz", "expired")})
    auth = NodeAuthenticator(users, PasswordAuth("pw"))
    assert run(auth.authenticate("a", "s1", 0)) == "tab"
    assert run(auth.authenticate("a", "s2", 0)) is None          # refused by the table
    assert run(auth.authenticate("a", "pw", 0)) is None          # backend id "user" is expired
    assert run(NodeAuthenticator(FakeUsers({}), PasswordAuth("pw")).authenticate("a", "pw", 0)) == "user"
    assert run(NodeAuthenticator(users, None).authenticate("a", "pw", 0)) is None


def test_user_inbounds_scope_the_listener(tmp_path):
    from fastpath.store import StateStore, User
    from fastpath.worker.user_directory import UserDirectory
    store = StateStore(tmp_path / "state.db")
    store.replace_users("test", [User(id="any", auth_secret="s-any"),
                         User(id="here", auth_secret="s-here", inbounds=["edge-hy2"]),
                         User(id="elsewhere", auth_secret="s-else", inbounds=["vless-in"])])
    users = UserDirectory(store)
    default, tagged = NodeAuthenticator(users), NodeAuthenticator(users, inbound_tag="edge-hy2")
    assert [run(default.authenticate("a", s, 0)) for s in ("s-any", "s-here", "s-else")] == \
        ["any", None, None]
    assert [run(tagged.authenticate("a", s, 0)) for s in ("s-any", "s-here", "s-else")] == \
        ["any", "here", None]


def test_masquerade_modes(tmp_path):
    status, headers, body = run(NotFoundMasquerade().respond({}, b""))
    assert (status, body) == (404, b"404 page not found\n")
    assert not any("hysteria" in k for k, _ in headers)
    status, headers, body = run(StringMasquerade(203, {"X-A": "b"}, "hi").respond({}, b""))
    assert status == 203 and ("x-a", "b") in headers and body == b"hi"
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "sub" / "a.txt").write_text("A")
    (tmp_path / "secret.txt").write_text("no")
    fm = FileMasquerade(str(root))
    assert run(fm.respond({":method": "GET", ":path": "/"}, b""))[2] == b"<h1>home</h1>"
    assert run(fm.respond({":method": "GET", ":path": "/sub/a.txt?x=1"}, b""))[2] == b"A"
    for evil in ("/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt",
                 "/..%2fsecret.txt", "//etc/passwd", "/sub/%00a.txt"):
        status, _, body = run(fm.respond({":method": "GET", ":path": evil}, b""))
        assert status == 404 and body == b"404 page not found\n", evil


def test_brutal_window_and_pacing():
    rtt = {"v": 0.0}
    b = BrutalCongestionControl(max_datagram_size=1200, bps=10_000_000, smoothed_rtt=lambda: rtt["v"])
    assert b.congestion_window == INITIAL_WINDOW
    rtt["v"] = 0.1
    b.on_rtt_measurement(now=100.0, rtt=0.1)
    assert b.congestion_window == int(10_000_000 * 0.1 * 2)       # ackRate 1 with < 50 samples
    assert b.pacing_rate(100.0) == 10_000_000

    class P:
        sent_bytes = 1200
    for _ in range(60):
        b.on_packet_acked(now=100.5, packet=P())
    b.on_packets_lost(now=100.5, packets=[P()] * 40)                  # 60 / 100 -> floored at 0.8
    assert b.ack_rate(100.6) == pytest.approx(0.8)
    assert b.pacing_rate(100.6) == pytest.approx(10_000_000 / 0.8)
    assert b.congestion_window == int(10_000_000 * 0.1 * 2 / 0.8)
    assert b.ack_rate(110.0) == 1.0                                   # old slots expire
