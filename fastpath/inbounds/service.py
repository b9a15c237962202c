"""The proxy-inbound service of a data-plane worker: ``start(ctx)`` opens the configured
listeners (every worker binds each port with SO_REUSEPORT, as the Hysteria 2 and media ports)
and closes their users' connections on ``kick`` and on the user directory's cut-offs."""
from __future__ import annotations

import asyncio
import logging
import os
import ssl

from fastpath.inbounds.live import PASSWORD_FORMS, LiveInbounds
from fastpath.inbounds.node_proxies import InboundCore, NodeHttpProxy, NodeSocks5
from fastpath.inbounds.shadowsocks import ShadowsocksInbound
from fastpath.inbounds.shadowsocks_2022 import METHODS_2022
from fastpath.inbounds.shadowsocks_2022_tcp import Shadowsocks2022Inbound
from fastpath.inbounds.shadowsocks_udp import udp_server_for
from fastpath.inbounds.trojan import TrojanInbound
from fastpath.proxy.http import MAX_HEAD

log = logging.getLogger("fastpath.inbounds")

PROTOCOLS = {"socks": NodeSocks5, "http": NodeHttpProxy}
# Inbounds on the shared stream layer (stream_inbound.py): any transport, TLS optional.
# Imported when one is opened: a worker without them does not pay for their modules at start.
STREAM_INBOUNDS = {"vless": ("fastpath.inbounds.vless", "VlessInbound"),
                   "vmess": ("fastpath.inbounds.vmess", "VmessInbound"),
                   "trojan": ("fastpath.inbounds.trojan_ws", "TrojanWsInbound")}


def _stream_inbound(kind: str):
    import importlib
    module, name = STREAM_INBOUNDS[kind]
    return getattr(importlib.import_module(module), name)


class InboundService:
    def __init__(self) -> None:
        self.cores: list[InboundCore] = []
        self.servers: list[asyncio.AbstractServer] = []
        self.panel = None       # the PasarGuard panel's inbounds (panel_inbounds.py)
        self.api = None         # the native API's /api/v1/inbounds (panel_inbounds.py too)
        self.live = None        # HY2 SCALE's /api/proxies listeners (live.py)

    def remove(self, core, server) -> None:
        self.cores.remove(core)
        self.servers.remove(server)

    def stored_sets(self) -> list:
        return [s for s in (self.panel, self.api) if s is not None]

    def kick(self, ids) -> int:
        return sum(core.kick(ids) for core in self.cores) + sum(s.kick(ids) for s in self.stored_sets())

    async def close(self) -> None:
        if self.live is not None:
            self.live.close()
        for stored in self.stored_sets():
            await stored.close()
        for server in self.servers:
            server.close()
        for core in self.cores:
            core.close_all()
        for server in self.servers:
            await server.wait_closed()


class TcpAndUdp:
    """A Shadowsocks listener: its TCP server and its UDP socket, closed together."""

    def __init__(self, server, udp) -> None:
        self.server, self.udp = server, udp

    def close(self) -> None:
        self.server.close()
        self.udp.close()

    async def wait_closed(self) -> None:
        await self.server.wait_closed()


def _tls_context(settings, data_dir) -> ssl.SSLContext:
    """The inbound's certificate: its own files, a TLS-store certificate by id, or the
    node's (``tls/`` of the data dir)."""
    cert, key = settings.tls_files(data_dir)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def open_listener(settings, ctx):
    """(core, server) of one inbound, listening (SO_REUSEPORT: every worker binds it)."""
    core = InboundCore(settings, ctx.users, ctx.counters, ctx.egress)
    host, port = settings.listen
    if settings.type in STREAM_INBOUNDS and (settings.type != "trojan"
                                             or settings.transport != "tcp"):
        inbound = _stream_inbound(settings.type)(core)
        server = await asyncio.start_server(
            inbound.handle, host or None, port, reuse_port=True, limit=MAX_HEAD,
            ssl=_tls_context(settings, ctx.config.data_dir) if settings.tls else None,
            ssl_handshake_timeout=10 if settings.tls else None)
    elif settings.type == "trojan":
        inbound = TrojanInbound(core, settings.fallback)
        server = await asyncio.start_server(
            inbound.handle, host or None, port, reuse_port=True, limit=MAX_HEAD,
            ssl=_tls_context(settings, ctx.config.data_dir), ssl_handshake_timeout=10)
    elif settings.type == "shadowsocks":
        if settings.method in METHODS_2022:
            inbound = Shadowsocks2022Inbound(core, settings.method, settings.psk)
        else:
            inbound = ShadowsocksInbound(core, settings.method)
        inbound.password_of = PASSWORD_FORMS[settings.passwords]
        loop = asyncio.get_running_loop()
        server = await loop.create_server(inbound.protocol, host or None, port, reuse_port=True)
        try:
            udp, _ = await loop.create_datagram_endpoint(
                udp_server_for(inbound), local_addr=(host or "0.0.0.0", port), reuse_port=True)
        except BaseException:
            server.close()
            raise
        server = TcpAndUdp(server, udp)
    else:
        proxy = PROTOCOLS[settings.type](core)
        tls = (_tls_context(settings, ctx.config.data_dir) if settings.cert or settings.cert_id or settings.tls
               else None)
        server = await asyncio.start_server(proxy._handle, host or None, port, reuse_port=True,
                                            limit=MAX_HEAD, ssl=tls,
                                            ssl_handshake_timeout=10 if tls else None)
    log.info("%s inbound %s listening on %s %s:%d", settings.type, settings.tag,
             "tcp+udp" if settings.type == "shadowsocks" else "tcp", host or "*", port)
    return core, server


async def start(ctx):
    inbounds = ctx.config.sections.get("inbounds") or []
    service = InboundService()
    try:
        for settings in inbounds:
            core, server = await open_listener(settings, ctx)
            service.cores.append(core)
            service.servers.append(server)
    except BaseException:
        await service.close()
        raise
    # The inbounds a PasarGuard panel's Start asked for (kept in the store; opened here at
    # worker start and whenever the face says they changed).
    # And those of the native API (/api/v1/inbounds), kept and followed the same way.
    from fastpath.inbounds.panel_inbounds import API_SETTING, SETTING, StoredInbounds
    service.panel = StoredInbounds(ctx, service, SETTING)
    service.api = StoredInbounds(ctx, service, API_SETTING)
    await service.panel.reconcile()
    await service.api.reconcile()
    # Listeners made at run time (HY2 SCALE /api/proxies), started, moved and stopped live.
    service.live = await LiveInbounds(ctx, service, lambda c, s: open_listener(s, c)).start()

    def cutoff(ids):
        closed = service.kick(ids)
        if closed:
            log.info("cut off %d proxy connection(s) of %s", closed, ", ".join(sorted(ids)))

    async def kick(args):
        return service.kick([str(i) for i in args.get("ids") or []])

    async def inbounds_changed(args):
        return await (service.api if (args or {}).get("set") == "api" else service.panel).reconcile()

    async def proxies_changed(_args):
        return await service.live.reload()

    async def inbound_totals(_args):
        # Per-inbound bytes of this worker process (PasarGuard's inbound statistics); the
        # pid lets the reader notice a restarted worker, whose tallies start again at 0.
        tags = {}
        # (service.cores holds the config's and HY2 SCALE's listeners.)
        for core in service.cores + [c for stored in service.stored_sets()
                                     for _s, c, _v in stored.open.values()]:
            up, down = core.totals()
            tags[core.settings.tag] = [up, down]
        return {"pid": os.getpid(), "tags": tags}

    ctx.users.on_cutoff(cutoff)
    ctx.on_command("kick", kick)
    ctx.on_command("inbounds_changed", inbounds_changed)
    ctx.on_command("proxies_changed", proxies_changed)
    ctx.on_command("inbound_totals", inbound_totals)
    return service
