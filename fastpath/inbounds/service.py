"""The proxy-inbound service of a data-plane worker: ``start(ctx)`` opens the configured
listeners (every worker binds each port with SO_REUSEPORT, as the Hysteria 2 and media ports)
and closes their users' connections on ``kick`` and on the user directory's cut-offs."""
from __future__ import annotations

import asyncio
import logging
import ssl

from fastpath.inbounds.node_proxies import InboundCore, NodeHttpProxy, NodeSocks5
from fastpath.inbounds.shadowsocks import ShadowsocksInbound
from fastpath.inbounds.trojan import TrojanInbound
from fastpath.proxy.http import MAX_HEAD

log = logging.getLogger("fastpath.inbounds")

PROTOCOLS = {"socks": NodeSocks5, "http": NodeHttpProxy}


class InboundService:
    def __init__(self) -> None:
        self.cores: list[InboundCore] = []
        self.servers: list[asyncio.AbstractServer] = []

    def kick(self, ids) -> int:
        return sum(core.kick(ids) for core in self.cores)

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for core in self.cores:
            core.close_all()
        for server in self.servers:
            await server.wait_closed()


def _tls_context(settings, data_dir) -> ssl.SSLContext:
    """The inbound's certificate: its own files, a TLS-store certificate by id, or the
    node's (``tls/`` of the data dir)."""
    cert, key = settings.tls_files(data_dir)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def start(ctx):
    inbounds = ctx.config.sections.get("inbounds") or []
    if not inbounds:
        return None
    service = InboundService()
    try:
        for settings in inbounds:
            core = InboundCore(settings, ctx.users, ctx.counters)
            host, port = settings.listen
            if settings.type == "trojan":
                inbound = TrojanInbound(core, settings.fallback)
                server = await asyncio.start_server(
                    inbound.handle, host or None, port, reuse_port=True, limit=MAX_HEAD,
                    ssl=_tls_context(settings, ctx.config.data_dir), ssl_handshake_timeout=10)
            elif settings.type == "shadowsocks":
                inbound = ShadowsocksInbound(core, settings.method)
                server = await asyncio.get_running_loop().create_server(
                    inbound.protocol, host or None, port, reuse_port=True)
            else:
                proxy = PROTOCOLS[settings.type](core)
                tls = _tls_context(settings, ctx.config.data_dir) if settings.tls else None
                server = await asyncio.start_server(proxy._handle, host or None, port,
                                                    reuse_port=True, limit=MAX_HEAD, ssl=tls,
                                                    ssl_handshake_timeout=10 if tls else None)
            service.cores.append(core)
            service.servers.append(server)
            log.info("%s inbound %s listening on tcp %s:%d", settings.type, settings.tag,
                     host or "*", port)
    except BaseException:
        await service.close()
        raise

    def cutoff(ids):
        closed = service.kick(ids)
        if closed:
            log.info("cut off %d proxy connection(s) of %s", closed, ", ".join(sorted(ids)))

    async def kick(args):
        return service.kick([str(i) for i in args.get("ids") or []])

    ctx.users.on_cutoff(cutoff)
    ctx.on_command("kick", kick)
    return service
