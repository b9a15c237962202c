"""``python -m fastpath.control.pasarguard.server --data-dir D [--config C]``: the PasarGuard node API.

Started by the supervisor when the config has a ``pasarguard`` section.  One process, one
event loop: the REST listener (aiohttp, TLS, HTTP/1.1) and, when ``grpcListen`` is set, the
gRPC server (grpcio asyncio, TLS, HTTP/2), both with the same certificate and the same
``PasarGuardFace`` state.  It reads counters from shared memory and the store like the control
API does, and tells the supervisor when users change.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import ssl
import sys

import grpc
from aiohttp import web

from fastpath.control.pasarguard.face import PasarGuardFace
from fastpath.control.pasarguard.grpc_service import ApiKeyFirst, GrpcApi, server_options
from fastpath.control.pasarguard.node_log import LogFanout
from fastpath.control.pasarguard.rest import RestApi
from fastpath.control.pasarguard.tls import resolve_certificate, server_context
from fastpath.config import ConfigError, load_config
from fastpath.node_log import log_to_node_file, node_log_path
from fastpath.supervisor.child_process import describe_startup_error, report_failure, report_ready

log = logging.getLogger("fastpath.pasarguard")


def _die_with_parent() -> None:
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve(config, settings, *, ready=None) -> int:
    from fastpath.control.node_model import NodeModel

    cert, key = resolve_certificate(settings, config.data_dir)
    tls = server_context(cert, key)
    node = NodeModel(config)
    face = PasarGuardFace(node, settings)
    logs = LogFanout(node_log_path(config.data_dir))
    runner = web.AppRunner(RestApi(face, logs).app(), access_log=None, shutdown_timeout=1.0,
                           handle_signals=False)
    grpc_server = None
    background: list[asyncio.Future] = []
    try:
        await runner.setup()
        host, port = settings.listen
        site = web.TCPSite(runner, host, port, ssl_context=tls, reuse_address=True)
        await site.start()
        bound = [f"REST https://{_hostport(host, _site_port(site) or port)}"]
        if settings.grpc_listen:
            grpc_server = grpc.aio.server(options=server_options(), interceptors=[ApiKeyFirst(face)])
            grpc_server.add_generic_rpc_handlers((GrpcApi(face, logs).handler(),))
            creds = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
            ghost, gport = settings.grpc_listen
            got = grpc_server.add_secure_port(_hostport(ghost, gport), creds)
            if not got:
                raise OSError(f"cannot listen on {_hostport(ghost, gport)} for gRPC")
            await grpc_server.start()
            bound.append(f"gRPC {_hostport(ghost, got)}")
        background = [asyncio.ensure_future(logs.run()), asyncio.ensure_future(face.watch_panel()),
                      asyncio.ensure_future(face.sample_host())]
        log.info("PasarGuard node API on %s; the panel pins the certificate %s", ", ".join(bound), cert)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if ready is not None:
            ready(face)
        await stop.wait()
        log.info("PasarGuard node API stopping")
    finally:
        logs.end_streams()
        if grpc_server is not None:
            await grpc_server.stop(0.5)
        await runner.cleanup()
        for task in background:
            task.cancel()
        logs.close()
        face.executor.shutdown(wait=False)
    return 0


def _site_port(site) -> int | None:
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or ()
    for sock in sockets:
        return sock.getsockname()[1]
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fastpath-pasarguard")
    parser.add_argument("--config")
    parser.add_argument("--data-dir")
    parser.add_argument("--no-uvloop", action="store_true")
    args = parser.parse_args(argv)
    _die_with_parent()
    level = os.environ.get("FASTPATH_LOG_LEVEL", "INFO")
    logging.basicConfig(level=level,
                        format="%(asctime)s pasarguard %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config, args.data_dir)
    except ConfigError as exc:
        print(f"fastpath PasarGuard API: config error: {exc}", file=sys.stderr)
        return 2
    settings = config.sections.get("pasarguard")
    if not settings:
        print("fastpath PasarGuard API: the config has no pasarguard section", file=sys.stderr)
        return 2
    config.data_dir.mkdir(parents=True, exist_ok=True)
    log_to_node_file(config.data_dir, "pasarguard")
    from fastpath.worker.event_loop import run
    try:
        return run(serve(config, settings, ready=lambda _face: report_ready()),
                   use_uvloop=not args.no_uvloop)
    except (OSError, ssl.SSLError, ValueError) as exc:
        # A port in use, an unreadable certificate: one line; the supervisor ends the node
        # with it when this happens at start-up.
        log.error("PasarGuard node API cannot start: %s", exc)
        report_failure(describe_startup_error(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
