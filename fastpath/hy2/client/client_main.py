"""``fastpath client -c client.yaml``: connect, authenticate, serve the local listeners.

The config uses the reference client's keys.  Exit codes follow the reference: the client
exits 1 with one line on stderr when it cannot start (the server refuses the auth, its
certificate does not verify, it does not answer within ``START_TIMEOUT``, a local listener's
port is taken), 2 for a config it cannot use, 0 when stopped by SIGINT/SIGTERM.

Once running it stays up, as the reference does: a lost connection is re-established in the
background, and when a reconnect is refused (auth or certificate) the listeners keep serving,
each request fails with that reason in the log, and the client tries again with backoff until
the server accepts again.  Exiting instead would turn a user who is over a traffic limit or
disabled for a while into a client that systemd restarts in a loop, and would drop the local
ports the user's applications are configured to use.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import sys
from pathlib import Path

from fastpath.config.fields import ConfigError
from fastpath.config.yaml_text import YamlProblem, load_yaml
from fastpath.hy2.client.client import BACKOFF_MAX, AuthError, CertificateError, Hy2Client, Hy2Error
from fastpath.hy2.config import parse_client_config
from fastpath.hy2.client.forwarding import TcpForward, UdpForward
from fastpath.hy2.client.http_proxy import HttpProxyServer
from fastpath.hy2.client.socks5 import Socks5Server

log = logging.getLogger("fastpath.client")

# How long the first connection may take before the client gives up with one line: a QUIC
# handshake plus auth is one or two round trips, and aioquic retransmits its Initial twice
# within this time.
START_TIMEOUT = 3.0


class StartError(Exception):
    """Why the client cannot start, as the one line it prints."""


def _why_refused(exc: Hy2Error) -> str:
    if isinstance(exc, AuthError):
        return f"{exc}; check 'auth' in the config"
    if isinstance(exc, CertificateError):
        return (f"{exc}; set tls.ca to the CA that signed it or tls.pinSHA256 to its hash, "
                "tls.sni to the name it holds, or tls.insecure: true to skip the check")
    return str(exc)


async def _keep_connected(client: Hy2Client, stop: asyncio.Event) -> None:
    delay = 1.0
    while not stop.is_set():
        conn = client.conn
        if conn is not None and not conn.closed:
            delay = 1.0
            await conn.terminated.wait()
            if stop.is_set():
                return
            reason = conn.close_reason
            log.warning("connection to the server closed (code 0x%x %s); reconnecting",
                        reason.error_code if reason else 0, reason.reason if reason else "")
        try:
            await client.ensure_connected()
            log.info("connected to %s:%d", client.settings.server_host, client.settings.server_port)
        except (AuthError, CertificateError) as exc:
            log.error("reconnecting: %s; requests fail until the server accepts again; "
                      "next try in %.0fs", _why_refused(exc), delay)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, BACKOFF_MAX)


async def _listen(starter, what: str, address):
    try:
        return await starter()
    except OSError as exc:
        host, port = address if isinstance(address, tuple) else (address, "")
        where = f"{host}:{port}" if port != "" else str(host)
        if exc.errno == errno.EADDRINUSE:
            raise StartError(f"cannot listen on {where} ({what}): the port is in use by another "
                             "program") from None
        raise StartError(f"cannot listen on {where} ({what}): {exc.strerror or exc}") from None


async def _start_listeners(client: Hy2Client, settings) -> tuple[list, list[str]]:
    """Every local listener, bound before the first connection so a taken port ends the start
    at once; what they are is logged only once the client is connected (a start that fails
    prints its one line and nothing else)."""
    listeners, said = [], []
    try:
        if settings.socks5_listen:
            listeners.append(await _listen(lambda: Socks5Server(
                client, settings.socks5_listen, username=settings.socks5_username,
                password=settings.socks5_password, disable_udp=settings.socks5_disable_udp).start(),
                "socks5.listen", settings.socks5_listen))
            said.append("SOCKS5 proxy on %s:%d" % listeners[-1].address[:2])
        if settings.http_listen:
            listeners.append(await _listen(lambda: HttpProxyServer(
                client, settings.http_listen, username=settings.http_username,
                password=settings.http_password, realm=settings.http_realm).start(),
                "http.listen", settings.http_listen))
            said.append("HTTP proxy on %s:%d" % listeners[-1].address[:2])
        for i, fwd in enumerate(settings.tcp_forwarding):
            listeners.append(await _listen(lambda: TcpForward(client, fwd.listen, fwd.remote).start(),
                                           f"tcpForwarding[{i}].listen", fwd.listen))
            said.append("TCP forward %s:%d -> %s" % (*listeners[-1].address[:2], fwd.remote))
        for i, fwd in enumerate(settings.udp_forwarding):
            listeners.append(await _listen(
                lambda: UdpForward(client, fwd.listen, fwd.remote, fwd.timeout).start(),
                f"udpForwarding[{i}].listen", fwd.listen))
            said.append("UDP forward %s:%d -> %s" % (*listeners[-1].address[:2], fwd.remote))
    except StartError:
        await _close_all(listeners)
        raise
    return listeners, said


async def _close_all(listeners) -> None:
    for listener in listeners:
        await listener.close()


async def client_main(settings) -> int:
    client = Hy2Client(settings)
    listeners: list = []
    try:
        listeners, said = await _start_listeners(client, settings)
        try:
            await client.connect(timeout=START_TIMEOUT)
        except (AuthError, CertificateError) as exc:
            raise StartError(_why_refused(exc)) from None
        except Hy2Error as exc:
            raise StartError(f"{exc} (is the server running there, and UDP to it allowed?)") from None
        except OSError as exc:
            raise StartError(f"cannot reach {settings.server_host}:{settings.server_port}: "
                             f"{exc.strerror or exc}") from None
    except StartError as exc:
        print(f"fastpath client: {exc}", file=sys.stderr)
        await _close_all(listeners)
        await client.close()
        return 1
    log.info("connected to %s:%d", settings.server_host, settings.server_port)
    for line in said:
        log.info("%s", line)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    keeper = asyncio.ensure_future(_keep_connected(client, stop))
    await stop.wait()
    keeper.cancel()
    await asyncio.gather(keeper, return_exceptions=True)
    await _close_all(listeners)
    await client.close()
    return 0


def run_client(config_path: str) -> int:
    from fastpath.worker.event_loop import run
    logging.basicConfig(level=os.environ.get("FASTPATH_LOG_LEVEL", "INFO"),
                        format="%(asctime)s client %(levelname)s %(name)s: %(message)s")
    # aioquic warns about every connection it closes on error; the client reports those
    # itself, once, in its own words (a bad certificate was otherwise told twice per try).
    logging.getLogger("quic").setLevel(logging.ERROR)
    try:
        raw = load_yaml(Path(config_path).read_text()) or {}
        settings = parse_client_config(raw)
    except OSError as exc:
        print(f"fastpath client: cannot read {config_path}: {exc.strerror}", file=sys.stderr)
        return 2
    except YamlProblem as exc:
        print(f"fastpath client: {config_path} is not valid YAML: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"fastpath client: config error: {exc}", file=sys.stderr)
        return 2
    return run(client_main(settings))
