"""Hysteria 2 settings: the reference server's and client's YAML keys, checked key by key.

A reference config migrates unchanged, so the key names are the reference's (camelCase); every
wrong or unknown key is refused with one line naming it (``ConfigError``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastpath.tls_ids import CERT_ID
from typing import Any

from fastpath.config.fields import ConfigError, Section, parse_bandwidth, parse_listen

DEFAULT_LISTEN = ":8443"
DEFAULT_UDP_IDLE_TIMEOUT = 60.0
DEFAULT_KEEP_ALIVE = 10.0
MIN_SALAMANDER_PASSWORD = 4


@dataclass
class QuicSettings:
    """QUIC windows and limits; defaults are the reference server's."""
    init_stream_window: int = 8 * 1024 * 1024
    max_stream_window: int = 8 * 1024 * 1024
    init_conn_window: int = 20 * 1024 * 1024
    max_conn_window: int = 20 * 1024 * 1024
    max_idle_timeout: float = 30.0
    max_incoming_streams: int = 1024
    keep_alive_period: float | None = None      # client only
    disable_path_mtu_discovery: bool = False    # accepted; aioquic keeps 1200-byte packets
    chrome_parrot: bool = False                 # client only: look like Chrome (see below)
    # Server only (fastpath's own key): half-open connections per worker before new ones must
    # prove their address with a Retry round trip; 0 asks it of every connection.
    max_half_open: int = 64


# The reference client (2.x) by default opens its connections with Chrome's QUIC transport
# parameters (``quic.disableChromeParrot`` turns that off), so a stock client's handshake
# looks like a browser's.  Ours advertises the same: Chrome's initial flow-control windows,
# unless the config sets them, and its initial stream limits; the configured maximum windows
# still bound what the windows grow to.
CHROME_STREAM_WINDOW = 6 * 1024 * 1024
CHROME_CONN_WINDOW = 15 * 1024 * 1024
CHROME_MAX_STREAMS_BIDI = 100
CHROME_MAX_STREAMS_UNI = 103


@dataclass
class AuthSettings:
    type: str | None = None            # None: the node's user table only
    password: str | None = None
    userpass: dict[str, str] = field(default_factory=dict)
    http_url: str | None = None
    http_insecure: bool = False
    command: str | None = None
    # The reference passes the auth string as the program's second argument, where every local
    # user can read it (``ps``) and a leading ``-`` reaches the program as an option.  By
    # default it goes on stdin instead; ``auth.commandArgv: true`` keeps the reference's argv.
    command_argv: bool = False


@dataclass
class MasqueradeSettings:
    type: str | None = None            # None: plain 404
    file_dir: str | None = None
    proxy_url: str | None = None
    proxy_rewrite_host: bool = False
    proxy_insecure: bool = False
    string_content: str = ""
    string_headers: dict[str, str] = field(default_factory=dict)
    string_status: int = 200


@dataclass
class ServerSettings:
    listen: tuple[str, int] = ("0.0.0.0", 8443)
    cert: str | None = None            # None: the node's own certificate in <data_dir>/tls
    key: str | None = None
    cert_id: str | None = None         # a TLS-store certificate by id (fastpath.tls_ids)
    obfs_password: str | None = None   # Salamander when set
    quic: QuicSettings = field(default_factory=QuicSettings)
    bandwidth_up: int = 0              # bytes/s, 0 = unlimited
    bandwidth_down: int = 0
    ignore_client_bandwidth: bool = False
    udp_idle_timeout: float = DEFAULT_UDP_IDLE_TIMEOUT
    disable_udp: bool = False
    speed_test: bool = False
    auth: AuthSettings = field(default_factory=AuthSettings)
    masquerade: MasqueradeSettings = field(default_factory=MasqueradeSettings)

    def tls_files(self, data_dir: str | Path) -> tuple[str, str]:
        if self.cert_id:
            from fastpath.tls_ids import store_files
            return store_files(data_dir, self.cert_id)
        if self.cert and self.key:
            return self.cert, self.key
        tls = Path(data_dir) / "tls"
        return str(tls / "node.crt"), str(tls / "node.key")


def _bandwidth(sec: Section, name: str) -> int:
    value = sec._get(name)
    if value is None:
        return 0
    try:
        return parse_bandwidth(value)
    except ValueError as exc:
        raise ConfigError(sec.key(name), str(exc)) from None


def _quic(sec: Section, *, client: bool) -> QuicSettings:
    q = QuicSettings()
    q.init_stream_window = sec.int("initStreamReceiveWindow", q.init_stream_window, minimum=16384)
    q.max_stream_window = sec.int("maxStreamReceiveWindow", q.max_stream_window, minimum=16384)
    q.init_conn_window = sec.int("initConnReceiveWindow", q.init_conn_window, minimum=16384)
    q.max_conn_window = sec.int("maxConnReceiveWindow", q.max_conn_window, minimum=16384)
    idle = sec.duration("maxIdleTimeout", q.max_idle_timeout)
    if not 4 <= idle <= 120:
        raise ConfigError(sec.key("maxIdleTimeout"), f"must be between 4s and 120s; got {idle:g}s")
    q.max_idle_timeout = idle
    q.disable_path_mtu_discovery = sec.bool("disablePathMTUDiscovery", False)
    if client:
        q.chrome_parrot = not sec.bool("disableChromeParrot", False)
        if q.chrome_parrot and not sec.has("initStreamReceiveWindow"):
            q.init_stream_window = min(CHROME_STREAM_WINDOW, q.max_stream_window)
        if q.chrome_parrot and not sec.has("initConnReceiveWindow"):
            q.init_conn_window = min(CHROME_CONN_WINDOW, q.max_conn_window)
        # As the reference client: a PING every 10 s unless set, so an idle connection (an
        # SSH session through a forward) outlives the idle timeout.
        keep = sec.duration("keepAlivePeriod", DEFAULT_KEEP_ALIVE)
        if not 2 <= keep <= 60:
            raise ConfigError(sec.key("keepAlivePeriod"), f"must be between 2s and 60s; got {keep:g}s")
        q.keep_alive_period = keep
    else:
        q.max_incoming_streams = sec.int("maxIncomingStreams", q.max_incoming_streams,
                                         minimum=8, maximum=1 << 20)
        q.max_half_open = sec.int("maxHalfOpen", q.max_half_open, minimum=0, maximum=1 << 16)
    sec.finish()
    return q


def _obfs(sec: Section) -> str | None:
    if not sec.raw:
        return None
    kind = sec.str("type", "salamander", choices=("salamander", "plain", ""))
    password = None
    if kind == "salamander":
        sal = sec.section("salamander")
        password = sal.str("password", required=True)
        if len(password.encode()) < MIN_SALAMANDER_PASSWORD:
            raise ConfigError(sal.key("password"),
                              f"must be at least {MIN_SALAMANDER_PASSWORD} bytes")
        sal.finish()
    else:
        sec.section("salamander")
    sec.finish()
    return password


def _auth(sec: Section) -> AuthSettings:
    a = AuthSettings()
    if not sec.raw:
        return a
    a.type = sec.str("type", required=True, choices=("password", "userpass", "http", "command"))
    if a.type == "password":
        a.password = sec.str("password", required=True)
    elif a.type == "userpass":
        table = sec.mapping("userpass")
        if not table:
            raise ConfigError(sec.key("userpass"), "needs at least one user: password entry")
        for user, password in table.items():
            if not isinstance(user, str) or not isinstance(password, (str, int)) or isinstance(password, bool):
                raise ConfigError(sec.key(f"userpass.{user}"), "expected user: password strings")
            a.userpass[user.lower()] = str(password)
    elif a.type == "http":
        http = sec.section("http")
        a.http_url = http.str("url", required=True)
        if not a.http_url.startswith(("http://", "https://")):
            raise ConfigError(http.key("url"), f"expected an http(s) URL, got {a.http_url!r}")
        a.http_insecure = http.bool("insecure", False)
        http.finish()
    elif a.type == "command":
        a.command = sec.str("command", required=True)
    a.command_argv = sec.bool("commandArgv", False)
    # Keys of the other types may sit beside the chosen one in a reference config.
    for other in ("password", "userpass", "http", "command"):
        sec._get(other)
    sec.finish()
    return a


def _masquerade(sec: Section) -> MasqueradeSettings:
    m = MasqueradeSettings()
    if not sec.raw:
        return m
    m.type = sec.str("type", None, choices=("file", "proxy", "string", "404"))
    if m.type == "404":
        m.type = None
    f = sec.section("file")
    if m.type == "file":
        m.file_dir = f.str("dir", required=True)
        if not Path(m.file_dir).is_dir():
            raise ConfigError(f.key("dir"), f"{m.file_dir} is not a directory")
    else:
        f.str("dir")
    f.finish()
    p = sec.section("proxy")
    if m.type == "proxy":
        m.proxy_url = p.str("url", required=True)
        if not m.proxy_url.startswith(("http://", "https://")):
            raise ConfigError(p.key("url"), f"expected an http(s) URL, got {m.proxy_url!r}")
    else:
        p.str("url")
    m.proxy_rewrite_host = p.bool("rewriteHost", False)
    m.proxy_insecure = p.bool("insecure", False)
    p.finish()
    s = sec.section("string")
    m.string_content = s.str("content", "") or ""
    if m.type == "string" and not s.has("content"):
        raise ConfigError(s.key("content"), "is required")
    headers = s.mapping("headers")
    m.string_headers = {str(k): str(v) for k, v in headers.items()}
    m.string_status = s.int("statusCode", 200, minimum=100, maximum=599)
    s.finish()
    for name in ("listenHTTP", "listenHTTPS"):
        if sec.has(name):
            raise ConfigError(sec.key(name), "TCP masquerade listeners are not supported; "
                                             "remove the key (QUIC masquerade is served)")
    if sec.bool("forceHTTPS", False):
        raise ConfigError(sec.key("forceHTTPS"), "TCP masquerade listeners are not supported")
    sec.finish()
    return m


def parse_server_config(raw: Any) -> ServerSettings:
    """The Hysteria 2 server keys of a node config (one mapping; None = defaults)."""
    top = Section(raw or {})
    s = ServerSettings()
    s.listen = top.listen("listen", DEFAULT_LISTEN)
    tls = top.section("tls")
    s.cert, s.key = tls.str("cert"), tls.str("key")
    if bool(s.cert) != bool(s.key):
        raise ConfigError(tls.key("key" if s.cert else "cert"), "tls needs both cert and key")
    for path_key, path in (("cert", s.cert), ("key", s.key)):
        if path and not Path(path).is_file():
            raise ConfigError(tls.key(path_key), f"{path}: no such file")
    s.cert_id = tls.str("certId")
    if s.cert_id and s.cert:
        raise ConfigError(tls.key("certId"), "give certId or cert and key, not both")
    if s.cert_id is not None and not CERT_ID.match(s.cert_id):
        raise ConfigError(tls.key("certId"), f"{s.cert_id!r} is not a certificate id")
    tls.str("sniGuard", choices=("strict", "disable", "dns-san"))
    tls.finish()
    s.obfs_password = _obfs(top.section("obfs"))
    s.quic = _quic(top.section("quic"), client=False)
    bw = top.section("bandwidth")
    s.bandwidth_up = _bandwidth(bw, "up")
    s.bandwidth_down = _bandwidth(bw, "down")
    bw.finish()
    s.ignore_client_bandwidth = top.bool("ignoreClientBandwidth", False)
    idle = top.duration("udpIdleTimeout", DEFAULT_UDP_IDLE_TIMEOUT)
    if not 2 <= idle <= 600:
        raise ConfigError("udpIdleTimeout", f"must be between 2s and 600s; got {idle:g}s")
    s.udp_idle_timeout = idle
    s.disable_udp = top.bool("disableUDP", False)
    s.speed_test = top.bool("speedTest", False)
    s.auth = _auth(top.section("auth"))
    s.masquerade = _masquerade(top.section("masquerade"))
    top.finish()
    return s


# -- client ------------------------------------------------------------------------------------

@dataclass
class Forward:
    listen: tuple[str, int]
    remote: str
    timeout: float = 60.0


@dataclass
class ClientSettings:
    server_host: str = "127.0.0.1"
    server_port: int = 443
    auth: str = ""
    sni: str | None = None
    insecure: bool = False
    pin_sha256: str | None = None      # hex of the certificate's SHA-256, colons allowed
    ca: str | None = None
    obfs_password: str | None = None
    quic: QuicSettings = field(default_factory=QuicSettings)
    bandwidth_up: int = 0
    bandwidth_down: int = 0
    fast_open: bool = False
    lazy: bool = False
    socks5_listen: tuple[str, int] | None = None
    socks5_username: str | None = None
    socks5_password: str | None = None
    socks5_disable_udp: bool = False
    http_listen: tuple[str, int] | None = None
    http_username: str | None = None
    http_password: str | None = None
    http_realm: str = "Hysteria"
    tcp_forwarding: list[Forward] = field(default_factory=list)
    udp_forwarding: list[Forward] = field(default_factory=list)

    @property
    def server_name(self) -> str:
        return self.sni or self.server_host


def _server_address(value: str) -> tuple[str, int]:
    text = value.strip()
    if "://" in text:
        raise ValueError("share links are not supported; give host:port")
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            return text[1:].rstrip("]"), 443
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    elif ":" not in text:
        return text, 443
    else:                                  # bare IPv6 without a port
        return text, 443
    if not port.isdigit():
        raise ValueError(f"expected host:port (port hopping ranges are not supported), got {value!r}")
    return host, int(port)


def parse_client_config(raw: Any) -> ClientSettings:
    top = Section(raw or {})
    c = ClientSettings()
    server = top.str("server", required=True)
    try:
        c.server_host, c.server_port = _server_address(server)
    except ValueError as exc:
        raise ConfigError("server", str(exc)) from None
    c.auth = top.str("auth", "") or ""
    tls = top.section("tls")
    c.sni = tls.str("sni")
    c.insecure = tls.bool("insecure", False)
    c.pin_sha256 = tls.str("pinSHA256")
    if c.pin_sha256:
        pin = c.pin_sha256.replace(":", "").lower()
        if len(pin) != 64 or any(ch not in "0123456789abcdef" for ch in pin):
            raise ConfigError(tls.key("pinSHA256"), "expected the certificate's SHA-256 in hex")
        c.pin_sha256 = pin
    c.ca = tls.str("ca")
    if c.ca and not Path(c.ca).is_file():
        raise ConfigError(tls.key("ca"), f"{c.ca}: no such file")
    tls.finish()
    transport = top.section("transport")
    transport.str("type", "udp", choices=("udp",))
    udp = transport.section("udp")
    if udp.has("hopInterval"):
        raise ConfigError(udp.key("hopInterval"), "port hopping is not supported")
    udp.finish()
    transport.finish()
    c.obfs_password = _obfs(top.section("obfs"))
    c.quic = _quic(top.section("quic"), client=True)
    bw = top.section("bandwidth")
    c.bandwidth_up = _bandwidth(bw, "up")
    c.bandwidth_down = _bandwidth(bw, "down")
    bw.finish()
    c.fast_open = top.bool("fastOpen", False)
    c.lazy = top.bool("lazy", False)
    socks = top.section("socks5")
    if socks.raw:
        c.socks5_listen = socks.listen("listen", required=True)
        c.socks5_username = socks.str("username")
        c.socks5_password = socks.str("password")
        c.socks5_disable_udp = socks.bool("disableUDP", False)
    socks.finish()
    http = top.section("http")
    if http.raw:
        c.http_listen = http.listen("listen", required=True)
        c.http_username = http.str("username")
        c.http_password = http.str("password")
        c.http_realm = http.str("realm", "Hysteria")
    http.finish()
    for name, target, udp_kind in (("tcpForwarding", c.tcp_forwarding, False),
                                   ("udpForwarding", c.udp_forwarding, True)):
        for i, entry in enumerate(top.list(name)):
            sec = Section(entry, f"{name}[{i}]")
            listen = sec.listen("listen", required=True)
            remote = sec.str("remote", required=True)
            try:
                parse_listen(remote)
            except ValueError as exc:
                raise ConfigError(sec.key("remote"), str(exc)) from None
            timeout = sec.duration("timeout", 60.0) if udp_kind else 60.0
            sec.finish()
            target.append(Forward(listen=listen, remote=remote, timeout=timeout))
    for unsupported in ("tcpTProxy", "udpTProxy", "tcpRedirect", "tun"):
        if top.has(unsupported):
            raise ConfigError(unsupported, "not supported by fastpath client")
    top.finish()
    if not (c.socks5_listen or c.http_listen or c.tcp_forwarding or c.udp_forwarding):
        raise ConfigError("", "client config needs at least one of socks5, http, "
                              "tcpForwarding, udpForwarding")
    return c
