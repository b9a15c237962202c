"""The Hysteria 2 service of a data-plane worker: ``start(ctx)`` wires the server to the node.

It reads the parsed settings from the node config, uses the node's certificate when the config
names none, authenticates against the user table then the configured backend, counts into the
worker's shard, and closes connections on ``kick`` commands and on the user directory's
cut-offs (disabled, expired, over limit).
"""
from __future__ import annotations

import logging

from fastpath.hy2.server.auth_backends import INBOUND_TAG, NodeAuthenticator, make_backend
from fastpath.hy2.config import ServerSettings, parse_server_config
from fastpath.hy2.server.masquerade import make_masquerade
from fastpath.hy2.server.server import Hy2Server

log = logging.getLogger("fastpath.hy2.service")
logging.getLogger("quic").setLevel(logging.WARNING)


class Hy2Service:
    def __init__(self, server: Hy2Server, authenticator, speedtest=None):
        self.server = server
        self.authenticator = authenticator
        self.speedtest = speedtest

    def kick(self, ids) -> int:
        return self.server.kick(ids)

    async def close(self) -> None:
        await self.server.close()
        await self.authenticator.close()
        await self.server.masquerade.close()
        if self.speedtest is not None:
            await self.speedtest.close()


def inbound_tag(config) -> str:
    """The name this listener goes by in users' ``inbounds``: the PasarGuard face's
    ``inboundTag`` when that face is configured, so both sides agree."""
    panel = config.sections.get("pasarguard")
    return (panel.inbound_tag if panel is not None else None) or INBOUND_TAG


async def start(ctx):
    settings = ctx.config.sections.get("hysteria")
    if settings is None:
        settings = parse_server_config(None)
    assert isinstance(settings, ServerSettings)
    cert, key = settings.tls_files(ctx.config.data_dir)
    obfs = None
    if settings.obfs_password:
        from fastpath.hy2.wire.salamander import Salamander
        obfs = Salamander(settings.obfs_password.encode())
    speedtest = None
    if settings.speed_test:
        from fastpath.hy2.server.speedtest import SpeedTestTarget
        speedtest = await SpeedTestTarget().start()
    authenticator = NodeAuthenticator(ctx.users, make_backend(settings.auth), inbound_tag(ctx.config))
    server = Hy2Server(settings, cert=cert, key=key, authenticator=authenticator,
                       masquerade=make_masquerade(settings.masquerade), counters=ctx.counters,
                       egress=ctx.egress, obfs=obfs, speedtest=speedtest,
                       reset_key=ctx.reset_key)
    await server.start(sock=ctx.hy2_socket)
    service = Hy2Service(server, authenticator, speedtest)

    def cutoff(ids):
        closed = server.kick(ids)
        if closed:
            log.info("cut off %d connection(s) of %s", closed, ", ".join(sorted(ids)))

    async def kick(args):
        ids = args.get("ids") or []
        return server.kick([str(i) for i in ids])

    async def online(_args):
        return server.online()

    ctx.users.on_cutoff(cutoff)
    ctx.on_command("kick", kick)
    ctx.on_command("hy2_online", online)
    host, port = server.address[:2]
    log.info("Hysteria 2 listening on udp %s:%d%s", host, port, " (salamander)" if obfs else "")
    return service
