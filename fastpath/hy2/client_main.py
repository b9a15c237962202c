"""``fastpath client -c client.yaml``: connect, authenticate, serve the local listeners.

The config uses the reference client's keys.  A refused auth is reported in one line and ends
the program (exit 1); an unreachable server is retried with backoff, and a lost connection is
re-established in the background so the next request finds it ready.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import yaml

from fastpath.config.fields import ConfigError
from fastpath.hy2.client import AuthError, Hy2Client
from fastpath.hy2.config import parse_client_config
from fastpath.hy2.forwarding import TcpForward, UdpForward
from fastpath.hy2.http_proxy import HttpProxyServer
from fastpath.hy2.socks5 import Socks5Server

log = logging.getLogger("fastpath.client")


async def _keep_connected(client: Hy2Client, stop: asyncio.Event) -> None:
    while not stop.is_set():
        conn = client.conn
        if conn is not None and not conn.closed:
            await conn.terminated.wait()
            if stop.is_set():
                return
            reason = conn.close_reason
            log.warning("connection to the server closed (code 0x%x %s); reconnecting",
                        reason.error_code if reason else 0, reason.reason if reason else "")
        try:
            await client.ensure_connected()
            log.info("connected to %s:%d", client.settings.server_host, client.settings.server_port)
        except AuthError as exc:
            log.error("%s", exc)
            stop.set()
            return


async def client_main(settings) -> int:
    client = Hy2Client(settings)
    try:
        await client.ensure_connected()
    except AuthError as exc:
        print(f"fastpath client: {exc}; check 'auth' in the config", file=sys.stderr)
        return 1
    log.info("connected to %s:%d", settings.server_host, settings.server_port)
    listeners = []
    if settings.socks5_listen:
        listeners.append(await Socks5Server(client, settings.socks5_listen,
                                            username=settings.socks5_username,
                                            password=settings.socks5_password,
                                            disable_udp=settings.socks5_disable_udp).start())
        log.info("SOCKS5 proxy on %s:%d", *listeners[-1].address)
    if settings.http_listen:
        listeners.append(await HttpProxyServer(client, settings.http_listen,
                                               username=settings.http_username,
                                               password=settings.http_password,
                                               realm=settings.http_realm).start())
        log.info("HTTP proxy on %s:%d", *listeners[-1].address)
    for fwd in settings.tcp_forwarding:
        listeners.append(await TcpForward(client, fwd.listen, fwd.remote).start())
        log.info("TCP forward %s:%d -> %s", *listeners[-1].address, fwd.remote)
    for fwd in settings.udp_forwarding:
        listeners.append(await UdpForward(client, fwd.listen, fwd.remote, fwd.timeout).start())
        log.info("UDP forward %s:%d -> %s", *listeners[-1].address, fwd.remote)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    keeper = asyncio.ensure_future(_keep_connected(client, stop))
    await stop.wait()
    keeper.cancel()
    for listener in listeners:
        await listener.close()
    await client.close()
    return 0


def run_client(config_path: str) -> int:
    from fastpath.worker.event_loop import run
    logging.basicConfig(level=os.environ.get("FASTPATH_LOG_LEVEL", "INFO"),
                        format="%(asctime)s client %(levelname)s %(name)s: %(message)s")
    logging.getLogger("quic").setLevel(logging.WARNING)
    try:
        raw = yaml.safe_load(Path(config_path).read_text()) or {}
        settings = parse_client_config(raw)
    except OSError as exc:
        print(f"fastpath client: cannot read {config_path}: {exc.strerror}", file=sys.stderr)
        return 2
    except yaml.YAMLError:
        print(f"fastpath client: {config_path} is not valid YAML", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"fastpath client: config error: {exc}", file=sys.stderr)
        return 2
    return run(client_main(settings))
