"""Proxy listeners made at run time (HY2 SCALE ``/api/proxies``), started, moved and stopped in
a running worker.

The rows live in the state store (``fastpath.store.proxy_listeners``).  A worker reads them at
start, when the face broadcasts ``proxies_changed`` after a change (its answer says which
listeners run and which failed to bind, so the face can undo a change no worker could apply),
and every ``RELOAD_SECONDS`` (a missed broadcast, or a worker restarted mid-change, only
delays a change).  A listener whose row changed is closed with its connections and opened
again with the new settings; a removed or disabled one is closed.

``proxy_settings`` turns a row into the ``InboundSettings`` the configured inbounds use, so
both kinds run the same code; the face calls it too, to refuse a row a worker could not run.
"""
from __future__ import annotations

import asyncio
import logging

from fastpath.hy2.udp_relay import split_address
from fastpath.inbounds.config import InboundSettings
from fastpath.inbounds.shadowsocks import own_secret
from fastpath.store.proxy_listeners import list_proxy_listeners
from fastpath.tls_ids import store_files

log = logging.getLogger("fastpath.inbounds")

RELOAD_SECONDS = 5.0
# The face's protocol names -> inbound types.
PROTOCOL_TYPES = {"socks5": "socks", "http": "http", "shadowsocks": "shadowsocks"}
TLS_PROTOCOLS = ("socks5", "http")


def scale_password(secret: str, user) -> str:
    """A HY2 SCALE user's Shadowsocks password is its password (as the reference derives the
    key from it); other users' is their auth secret."""
    meta = getattr(user, "meta", None)
    if getattr(user, "source", None) == "hy2scale" and isinstance(meta, dict):
        password = meta.get("password")
        if isinstance(password, str) and password:
            return password
    return own_secret(secret, user)


PASSWORD_FORMS = {"secret": own_secret, "password": scale_password}


def parse_listen(text) -> tuple[str, int]:
    """"host:port" / "[v6]:port" / ":port" -> (host, port); ValueError with the reason."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("listen required (host:port)")
    try:
        host, port = split_address(text.strip())
    except (ValueError, TypeError):
        raise ValueError(f"listen {text[:80]!r} is not host:port") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"listen port {port} out of range")
    return host or "0.0.0.0", port


def proxy_settings(row: dict, data_dir) -> InboundSettings:
    """The inbound a stored row describes; ValueError with a message when it cannot run."""
    protocol = row.get("protocol") or "socks5"
    kind = PROTOCOL_TYPES.get(protocol)
    if kind is None:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOL_TYPES)}")
    listen = parse_listen(row.get("listen"))
    method = None
    if kind == "shadowsocks":
        from fastpath.inbounds.shadowsocks_2022 import METHODS_2022
        from fastpath.inbounds.shadowsocks_aead import METHODS
        method = row.get("method") or ""
        if method not in METHODS and method not in METHODS_2022:
            raise ValueError(f"method must be one of {', '.join([*METHODS, *METHODS_2022])}")
    cert_id = None
    if row.get("tls_cert"):
        if protocol not in TLS_PROTOCOLS:
            raise ValueError(f"tls_cert: a {protocol} listener has no TLS wrapping")
        cert_id = str(row["tls_cert"])
        try:
            store_files(data_dir, cert_id)      # the TLS store's, by id (fastpath.tls_ids)
        except LookupError:
            raise ValueError(f"tls_cert {cert_id[:64]!r}: no certificate with a key in the TLS store") from None
    return InboundSettings(type=kind, listen=listen, tag=str(row["id"]), auth=True, method=method,
                           cert_id=cert_id, tls=cert_id is not None or kind == "trojan",
                           exit_via=row.get("exit_via") or None,
                           exit_paths=tuple(p for p in row.get("exit_paths") or () if isinstance(p, str) and p),
                           exit_mode=row.get("exit_mode") or "", passwords="password")


class LiveInbounds:
    """This worker's run-time listeners: id -> (settings, core, server)."""

    def __init__(self, ctx, service, opener) -> None:
        self.ctx = ctx
        self.service = service
        self.opener = opener                  # async (ctx, settings) -> (core, server)
        self.running: dict[str, tuple] = {}
        self.failed: dict[str, str] = {}
        self.lock = asyncio.Lock()
        self.task: asyncio.Task | None = None

    async def start(self) -> "LiveInbounds":
        try:
            await self.reload()
        except Exception:
            log.exception("proxy listeners: first load failed")
        self.task = asyncio.ensure_future(self._run())
        return self

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_SECONDS)
            try:
                await self.reload()
            except Exception:
                log.exception("proxy listeners: reload failed")

    async def reload(self) -> dict:
        """Apply the stored rows; ``{"running": [ids], "failed": {id: why}}``."""
        async with self.lock:
            wanted: dict[str, InboundSettings] = {}
            failed: dict[str, str] = {}
            for row in list_proxy_listeners(self.ctx.store):
                if not row.get("enabled"):
                    continue
                try:
                    wanted[row["id"]] = proxy_settings(row, self.ctx.config.data_dir)
                except ValueError as exc:
                    failed[row["id"]] = str(exc)
            for pid, (settings, _core, _server) in list(self.running.items()):
                if wanted.get(pid) != settings:
                    await self._stop(pid)
            for pid, settings in wanted.items():
                if pid in self.running:
                    continue
                try:
                    core, server = await self.opener(self.ctx, settings)
                except (OSError, ValueError) as exc:
                    failed[pid] = f"{settings.listen[0]}:{settings.listen[1]}: {exc.strerror or exc}" \
                        if isinstance(exc, OSError) else str(exc)
                    continue
                self.running[pid] = (settings, core, server)
                self.service.cores.append(core)
                self.service.servers.append(server)
            for pid, why in failed.items():
                if self.failed.get(pid) != why:
                    log.warning("proxy listener %s not started: %s", pid, why)
            self.failed = failed
            return {"running": sorted(self.running), "failed": failed}

    async def _stop(self, pid: str) -> None:
        settings, core, server = self.running.pop(pid)
        self.service.remove(core, server)
        server.close()
        core.close_all()
        try:
            await asyncio.wait_for(server.wait_closed(), 3)
        except asyncio.TimeoutError:
            pass
        log.info("%s inbound %s on %s:%d stopped", settings.type, pid, *settings.listen)

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
