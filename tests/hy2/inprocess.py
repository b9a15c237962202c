"""A Hysteria 2 server in the test's own process and event loop, for tests that reach into its
objects (sessions, pumps): password auth, 404 masquerade, loopback on a free port."""
from __future__ import annotations

from fastpath.hy2.server.auth_backends import NodeAuthenticator, PasswordAuth
from fastpath.hy2.config import parse_server_config
from fastpath.hy2.server.masquerade import NotFoundMasquerade
from fastpath.hy2.server.server import Hy2Server


async def password_server(tls_files, password: str = "pw", counters=None) -> Hy2Server:
    return await Hy2Server(parse_server_config({"listen": "127.0.0.1:0"}),
                           cert=tls_files[0], key=tls_files[1],
                           authenticator=NodeAuthenticator(None, PasswordAuth(password)),
                           masquerade=NotFoundMasquerade(), counters=counters).start()
