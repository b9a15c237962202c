"""A data-plane worker process: one counter shard, the services, commands from the supervisor.

Started by the supervisor with one end of a socket pair; when that link closes (the supervisor
is gone) the worker exits, so no orphan keeps serving with nobody counting.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import socket
import sys

from fastpath.config import ConfigError, load_config
from fastpath.hy2.client.exit_peers import ExitPeers
from fastpath.mesh import api_relay
from fastpath.mesh.egress import MeshEgress
from fastpath.node_log import log_to_node_file, setup_process_logging
from fastpath.shm import CounterTable
from fastpath.store import StateStore
from fastpath.supervisor.bootstrap import stateless_reset_key
from fastpath.supervisor.child_process import (describe_startup_error, die_with_parent,
                                               report_failure, report_ready)
from fastpath.supervisor.command_channel import CommandError, serve_requests
from fastpath.worker.context import WorkerContext
from fastpath.worker.event_loop import run
from fastpath.worker.user_directory import UserDirectory

log = logging.getLogger("fastpath.worker")

# Services every worker runs, each a module with ``async def start(ctx) -> service | None``
# (None when its config section turns it off).  A service object has ``async close()``.
SERVICES = ("fastpath.hy2.server.service", "fastpath.media.service", "fastpath.inbounds.service")

HEARTBEAT_SECONDS = 1.0


def control_address(config):
    """Where this node's control listener answers on this machine, for the remote-UI tunnel;
    None when the HY2 SCALE face is off (there is no UI to show)."""
    scale = config.sections.get("scale")
    if scale is not None and not getattr(scale, "enabled", True):
        return None
    host = config.control.host
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1", "localhost": "127.0.0.1"}.get(host, host)
    return host, config.control.port


async def worker_main(args) -> int:
    config = load_config(args.config, data_dir=args.data_dir)
    log_to_node_file(config.data_dir, f"worker[{args.shard}]")
    table = CounterTable.attach(config.counter_segment_path)
    writer = table.writer(args.shard)
    store = StateStore(config.store_path)
    users = UserDirectory(store)
    # Outbound peers (HY2 SCALE clients) for traffic that leaves through another node, and the
    # worker's one egress over them (fastpath.mesh: exit paths, rules, nested discovery), which
    # the Hysteria 2 server and the proxy inbounds get from the context.
    exits = await ExitPeers(store).start()
    mesh = await MeshEgress(store, exits, users, config.name).start()
    mesh.control_addr = control_address(config)
    ctx = WorkerContext(shard=args.shard, config=config, table=table, counters=writer,
                        store=store, users=users, egress=mesh,
                        hy2_socket=socket.socket(fileno=args.hy2_fd) if args.hy2_fd is not None else None,
                        reset_key=stateless_reset_key(config.data_dir))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def ping(_args):
        return {"shard": args.shard, "pid": os.getpid()}

    async def users_changed(_args):
        return {"cut": sorted(ctx.users.reload())}

    async def over_limit(a):
        ctx.users.set_over_limit(a.get("ids") or [])
        return True

    async def budgets(a):
        # Per-user caps on this shard's counters, enforced by the pumps as they count.
        allow = a.get("allow")
        if not isinstance(allow, dict):
            raise CommandError("budgets needs 'allow', an object")
        writer.set_budgets(allow)
        return len(allow)

    async def refuse_device(a):
        return ctx.users.refuse_device(str(a.get("user") or ""), str(a.get("ip") or ""),
                                       float(a.get("seconds") or 0))

    async def peers_changed(_args):
        changed = await exits.reload()
        mesh.reload()
        mesh.nested.reload()
        mesh.nested.kick()
        return {"changed": changed}

    async def peers_status(_args):
        return mesh.peer_status()

    async def rules_changed(_args):
        mesh.reload()
        return {"rules": mesh.rules.count}

    async def mesh_status(_args):
        return mesh.status()

    async def mesh_peer_list(_args):
        return mesh.peer_list()

    async def inbound_peers(_args):
        return {"peers": mesh.inbound.listing()}

    async def remote_http(a):
        # One HTTP exchange with a peer's web UI along a chain (HY2 SCALE /scale/remote/).
        chain, request = a.get("chain"), a.get("request")
        if not isinstance(chain, list) or not chain or not all(isinstance(c, str) and c for c in chain) \
                or not isinstance(request, bytes):
            raise CommandError("remote_http needs 'chain' (names) and 'request' (bytes)")
        return await api_relay.carry(exits, chain, request)

    ctx.on_command("peers_changed", peers_changed)
    ctx.on_command("peers_status", peers_status)
    ctx.on_command("rules_changed", rules_changed)
    ctx.on_command("mesh_status", mesh_status)
    ctx.on_command("mesh_peer_list", mesh_peer_list)
    ctx.on_command("inbound_peers", inbound_peers)
    ctx.on_command("remote_http", remote_http)
    ctx.on_command("ping", ping)
    ctx.on_command("refuse_device", refuse_device)
    ctx.on_command("users_changed", users_changed)
    ctx.on_command("over_limit", over_limit)
    ctx.on_command("budgets", budgets)

    services = []
    for name in SERVICES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue
            raise
        service = await module.start(ctx)
        if service is not None:
            services.append(service)

    async def handle(cmd: str, cmd_args: dict):
        handler = ctx.commands.get(cmd)
        if handler is None:
            raise CommandError(f"unknown command {cmd!r}")
        return await handler(cmd_args)

    link = socket.socket(fileno=args.link_fd)
    reader, link_writer = await asyncio.open_unix_connection(sock=link)
    link_task = asyncio.ensure_future(serve_requests(reader, link_writer, handle))
    link_task.add_done_callback(lambda _t: stop.set())

    async def heartbeat():
        while True:
            writer.heartbeat()
            try:
                ctx.users.check_expiry()
            except Exception:
                log.exception("expiry check failed")
            await asyncio.sleep(HEARTBEAT_SECONDS)

    beat = asyncio.ensure_future(heartbeat())
    log.info("worker %d ready (pid %d)", args.shard, os.getpid())
    report_ready()
    await stop.wait()
    beat.cancel()
    for service in services:
        try:
            await asyncio.wait_for(service.close(), 3)
        except Exception:
            log.exception("service did not close cleanly")
    await mesh.close()
    await exits.close()
    link_task.cancel()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fastpath-worker")
    parser.add_argument("--shard", type=int, required=True)
    parser.add_argument("--link-fd", type=int, required=True)
    # The Hysteria 2 socket of this shard, bound by the supervisor (fastpath.supervisor.udp_shards).
    parser.add_argument("--hy2-fd", type=int)
    parser.add_argument("--config")
    parser.add_argument("--data-dir")
    parser.add_argument("--no-uvloop", action="store_true")
    args = parser.parse_args(argv)
    die_with_parent()
    setup_process_logging(None, f"worker[{args.shard}]")
    try:
        return run(worker_main(args), use_uvloop=not args.no_uvloop)
    except ConfigError as exc:
        report_failure(f"config error: {exc}")
        return 2
    except Exception as exc:
        if getattr(report_ready, "sent", False):
            raise                       # a crash of a running worker: the traceback helps
        # Cannot start (a port, a certificate...): one line to the supervisor, which ends the
        # node with it; the traceback only at DEBUG.
        log.debug("worker %d cannot start", args.shard, exc_info=True)
        report_failure(describe_startup_error(exc))
        return 3
