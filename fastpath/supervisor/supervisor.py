"""``fastpath serve``: owns the counter segment and the state store, runs the children.

Children: one data-plane worker per shard (restarted on the same shard when it dies, so its
counters carry on), the control API (gunicorn), and the PasarGuard node API when configured.
The supervisor also answers the command socket, fans commands out to workers, snapshots the
counters into the store and cuts off users who cross their traffic limit.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sqlite3
import sys
import time
from dataclasses import dataclass, field

from fastpath.control.exposure import exposure_line
from fastpath import __version__
from fastpath.config import ConfigError, NodeConfig, load_config
from fastpath.node_log import log_to_node_file, rotate_if_large, setup_process_logging
from fastpath.shm import KIND_USER, scan_slots
from fastpath.store import StateStore, User
from fastpath.store.ledger import USAGE, Ledger, base, used_many
from fastpath.store.state_store import StoreUnusable
from fastpath.supervisor import bootstrap, preflight, segment, udp_shards
from fastpath.supervisor.child_process import STATUS_FD_ENV, child_command, describe_startup_error
from fastpath.supervisor.command_channel import CommandError, FrameLink, serve_requests

log = logging.getLogger("fastpath.supervisor")

SNAPSHOT_SECONDS = 2.0
ENFORCE_SECONDS = 0.25
STOP_GRACE_SECONDS = 3.0
RESTART_BACKOFF_MIN = 0.2
RESTART_BACKOFF_MAX = 30.0
# A child that ran this long before it crashed starts over at the shortest backoff.
STABLE_SECONDS = 30.0
# Restarts in a row that fail before the child is ready end the node (it cannot recover).
MAX_FAILED_RESTARTS = 5


@dataclass
class Child:
    name: str
    module: str
    args: list[str] = field(default_factory=list)
    shard: int | None = None
    proc: asyncio.subprocess.Process | None = None
    link: FrameLink | None = None
    restarts: int = 0
    started_at: float = 0.0
    task: asyncio.Task | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    status: asyncio.StreamReader | None = None
    status_writer: asyncio.StreamWriter | None = None
    failed_starts: int = 0
    # True from this process's "ready" line until it exits: a child that runs but is still
    # starting (binding, loading users) is alive, not yet serving.
    serving: bool = False

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


class Supervisor:
    def __init__(self, config_path: str | None, data_dir: str | None, *, use_uvloop: bool = True,
                 reset_store: bool = False):
        self.reset_store = reset_store
        self.config_path = config_path
        self.data_dir_arg = data_dir
        self.use_uvloop = use_uvloop
        self.config: NodeConfig = load_config(config_path, data_dir)
        self.started = time.time()
        self.children: list[Child] = []
        self.stopping = False
        self.stop_event: asyncio.Event | None = None
        self.over_limit: set[str] = set()
        # shard -> (the link it went on, the caps last sent to that worker)
        self._budgets_sent: dict[int, tuple] = {}
        self._enforce_lock = asyncio.Lock()
        self._users_cache_at = 0.0
        self._limited: dict[str, User] = {}
        self._carried: dict = {}
        self._reset_marks: dict = {}
        self.exit_code = 0
        self.hy2_sockets: list[socket.socket] = []

    # -- set-up -----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Data dir, secrets, certificate, store, segment; StartupError when one cannot be."""
        cfg = self.config
        preflight.check_data_dir(cfg.data_dir)
        os.chmod(cfg.data_dir, 0o700)
        log_to_node_file(cfg.data_dir, "supervisor")   # start-up warnings belong in node.log
        self.secrets, created = bootstrap.load_or_create_secrets(cfg.data_dir)
        bootstrap.ensure_certificate(cfg.data_dir)
        self.store = StateStore.open_checked(cfg.store_path, used=not created,
                                             reset=self.reset_store)
        self.ledger = Ledger(self.store)
        if self.reset_store:
            log.warning("--reset-store given: an unusable %s was moved aside (if any)",
                        cfg.store_path)
        if created:
            self._first_start()
        self.table = segment.open_segment(cfg.counter_segment_path, self.store, cfg.workers,
                                          cfg.slots_per_shard)
        self.hy2_sockets = udp_shards.open_shard_sockets(cfg)

    def _first_start(self) -> None:
        uses_table_auth = not (self.config.raw.get("auth") or self.config.raw.get("pasarguard"))
        lines = ["fastpath: first start in " + str(self.config.data_dir.resolve())]
        control = self.config.control
        if control.token:
            lines.append("  control API token: the one set in control.token")
        elif control.on_loopback:
            lines.append("  control API on loopback: no token needed (a generated one in "
                         "secrets.json is asked for once control.listen leaves loopback)")
        else:
            lines.append(f"  control API token: {self.secrets['control_token']}")
        if uses_table_auth and not self.store.list_users():
            self.store.create_user(User(id="default", auth_secret=self.secrets["default_user_secret"]))
            lines.append(f"  Hysteria 2 user 'default', auth: {self.secrets['default_user_secret']}")
        lines.append("  (shown once; also kept in secrets.json, mode 0600)")
        print("\n".join(lines), flush=True)

    # -- children ---------------------------------------------------------------------------
    def _base_args(self) -> list[str]:
        args = ["--data-dir", str(self.config.data_dir)]
        if self.config_path:
            args += ["--config", str(self.config_path)]
        return args

    async def _spawn(self, child: Child) -> None:
        argv, env = child_command(child.module, *child.args)
        status_ours, status_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env[STATUS_FD_ENV] = str(status_theirs.fileno())
        pass_fds = [status_theirs.fileno()]
        theirs = None
        if child.shard is not None:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            argv += ["--link-fd", str(theirs.fileno())]
            pass_fds.append(theirs.fileno())
            if child.shard < len(self.hy2_sockets):
                hy2_fd = self.hy2_sockets[child.shard].fileno()
                argv += ["--hy2-fd", str(hy2_fd)]
                pass_fds.append(hy2_fd)
        try:
            child.proc = await asyncio.create_subprocess_exec(*argv, pass_fds=pass_fds, env=env)
        finally:
            status_theirs.close()
            if theirs is not None:
                theirs.close()
        child.started_at = time.time()
        # Keep the writer: a StreamWriter that is collected closes its transport.
        child.status, child.status_writer = await asyncio.open_unix_connection(sock=status_ours)
        if theirs is not None:
            reader, writer = await asyncio.open_unix_connection(sock=ours)
            child.link = FrameLink(reader, writer)
        log.info("started %s (pid %d)", child.name, child.proc.pid)

    async def _start_outcome(self, child: Child) -> str | None:
        """Wait until the child reports: None when it is ready, else why it could not start
        (its own line, or its exit code when it ended without one)."""
        line = b""
        try:
            line = await child.status.readline()
        except (OSError, ValueError):
            pass
        text = line.decode("utf-8", "replace").strip()
        if text == "ready":
            return None
        code = await child.proc.wait()
        if text.startswith("failed "):
            return text[len("failed "):]
        return f"exited with code {code} before it was ready"

    async def _keep_running(self, child: Child) -> None:
        """Run a child for as long as the node runs.  A child that cannot start ends the node
        (the next try would fail the same way); one that crashes after it was ready is
        restarted with backoff, counted in ``restarts``."""
        backoff = RESTART_BACKOFF_MIN
        while not self.stopping:
            await self._spawn(child)
            problem = await self._start_outcome(child)
            if problem is not None:
                self._close_link(child)
                if self.stopping:
                    break
                child.failed_starts += 1
                if child.restarts == 0 or child.failed_starts >= MAX_FAILED_RESTARTS:
                    self.fail(f"{child.name} cannot start: {problem}")
                    return
                log.warning("%s did not start again: %s; retrying in %.1fs", child.name,
                            problem, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RESTART_BACKOFF_MAX)
                continue
            child.failed_starts = 0
            child.serving = True
            child.ready.set()
            code = await child.proc.wait()
            child.serving = False
            self._close_link(child)
            if self.stopping:
                break
            lived = time.time() - child.started_at
            child.restarts += 1
            if lived > STABLE_SECONDS:
                backoff = RESTART_BACKOFF_MIN
            log.warning("%s exited with %s after %.1fs; restart %d in %.1fs", child.name,
                        _exit_text(code), lived, child.restarts, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RESTART_BACKOFF_MAX)

    @staticmethod
    def _close_link(child: Child) -> None:
        if child.link:
            child.link.close()
            child.link = None
        if child.status_writer:
            child.status_writer.close()
            child.status_writer = child.status = None

    def fail(self, message: str) -> None:
        """End the node with one line and a non-zero exit code."""
        if self.stopping or self.exit_code:
            return
        log.error("%s; stopping the node", message)
        self.exit_code = 1
        if self.stop_event is not None:
            self.stop_event.set()

    def _make_children(self) -> None:
        for shard in range(self.config.workers):
            args = ["--shard", str(shard), *self._base_args()]
            if not self.use_uvloop:
                args.append("--no-uvloop")
            self.children.append(Child(name=f"worker[{shard}]", module="fastpath.worker",
                                       args=args, shard=shard))
        self.children.append(Child(name="control-api", module="fastpath.control.server",
                                   args=self._base_args()))
        if self.config.sections.get("pasarguard"):
            self.children.append(Child(name="pasarguard-api", module="fastpath.control.pasarguard.server",
                                       args=self._base_args()))

    @property
    def workers(self) -> list[Child]:
        return [c for c in self.children if c.shard is not None]

    async def broadcast(self, cmd: str, args: dict | None = None, timeout: float = 5.0) -> list:
        """Send a command to every live worker; results in shard order (errors as strings)."""
        async def one(child: Child):
            if child.link is None:
                return {"error": f"{child.name} is not running"}
            try:
                return await child.link.call(cmd, args, timeout)
            except CommandError as exc:
                return {"error": str(exc)}
        return list(await asyncio.gather(*(one(c) for c in self.workers)))

    # -- commands from the control API ------------------------------------------------------
    async def handle_command(self, cmd: str, args: dict):
        if cmd == "status":
            return self.status()
        if cmd == "kick":
            ids = args.get("ids")
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise CommandError("kick needs 'ids', a list of strings")
            results = await self.broadcast("kick", {"ids": ids})
            return {"closed": sum(r for r in results if isinstance(r, int))}
        if cmd == "users_changed":
            results = await self.broadcast("users_changed", args)
            # Caps and cut-offs for the change before the caller hears back: a user created
            # or reset through an API is enforced from its first byte.
            try:
                await self.enforce_once(refresh=True)
            except Exception:
                log.exception("limit enforcement after a user change failed")
            return results
        if cmd == "broadcast":
            name = args.get("cmd")
            if not isinstance(name, str):
                raise CommandError("broadcast needs 'cmd'")
            return await self.broadcast(name, args.get("args") or {},
                                        float(args.get("timeout", 5.0)))
        if cmd == "one_worker":
            # A command with an effect to have once (a request carried to a peer): the first
            # running worker takes it.
            name = args.get("cmd")
            if not isinstance(name, str):
                raise CommandError("one_worker needs 'cmd'")
            child = next((c for c in self.workers if c.link is not None), None)
            if child is None:
                raise CommandError("no worker is running")
            return await child.link.call(name, args.get("args") or {}, float(args.get("timeout", 5.0)))
        if cmd == "reload":
            return await self.reload()
        raise CommandError(f"unknown command {cmd!r}")

    def status(self) -> dict:
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime": time.time() - self.started,
            "started": self.started,
            "segment_id": self.table.segment_id,
            "children": [{"name": c.name, "shard": c.shard, "pid": c.proc.pid if c.proc else None,
                          "alive": c.alive, "ready": c.alive and c.serving,
                          "restarts": c.restarts} for c in self.children],
        }

    async def reload(self) -> dict:
        try:
            new = load_config(self.config_path, self.data_dir_arg)
        except ConfigError as exc:
            log.error("reload refused: %s", exc)
            return {"reloaded": False, "error": str(exc)}
        if new.workers != self.config.workers or new.slots_per_shard != self.config.slots_per_shard:
            log.warning("reload: workers/counters shape changes need a restart; kept the old one")
        self.config = new
        for child in self.children:
            if child.shard is None and child.alive and child.name == "control-api":
                child.proc.send_signal(signal.SIGHUP)
        results = await self.broadcast("reload", {})
        log.info("config reloaded")
        return {"reloaded": True, "workers": results}

    # -- background loops -------------------------------------------------------------------
    async def _snapshot_loop(self) -> None:
        while True:
            await asyncio.sleep(SNAPSHOT_SECONDS)
            try:
                totals = segment.segment_totals(self.table)
                await asyncio.to_thread(self.store.snapshot_segment, self.table.segment_id, totals)
            except Exception:
                log.exception("counter snapshot failed")
            try:
                rotate_if_large(self.config.data_dir)
            except OSError as exc:
                log.warning("node log rotation failed: %s", exc)

    async def _enforce_loop(self) -> None:
        """Cut off users whose carried + live traffic reaches their limit, every tick."""
        while True:
            await asyncio.sleep(ENFORCE_SECONDS)
            try:
                await self.enforce_once()
            except Exception:
                log.exception("limit enforcement failed")

    async def enforce_once(self, refresh: bool = False) -> None:
        """One enforcement pass: reread limited users (every 5 s, or now with ``refresh``),
        push each worker its users' caps, broadcast who is over the limit.  Also run when
        users change, so a new limit is capped in the pumps before the API answers."""
        async with self._enforce_lock:
            if refresh or time.time() - self._users_cache_at > 5.0:
                self._limited = {u.id: u for u in self.store.list_users() if u.traffic_limit}
                with self.ledger.read() as book:
                    self._carried = book.carried()
                    self._reset_marks = book.baselines(USAGE)
                self._users_cache_at = time.time()
            users = self._limited
            capped = any(sent[1] for sent in self._budgets_sent.values())
            if not users and not self.over_limit and not capped:
                return
            # One read of the user slots gives both the live totals and each shard's part, so
            # a worker's cap (limit - what the user moved elsewhere) is computed from figures
            # of the same instant: two reads would let bytes moved between them through.
            per_shard, live = self._user_slots_by_shard(users)
            over = set()
            # The ledger's rule, as every face displays it.
            ids = list(users)
            used = dict(zip(ids, used_many(
                [(uid, *base(self._carried.get(uid), self._reset_marks.get(uid))) for uid in ids],
                live)))
            for uid, user in users.items():
                if used[uid] >= user.traffic_limit:
                    over.add(uid)
            await self._push_budgets(users, used, per_shard)
            if over != self.over_limit:
                self.over_limit = over
                await self.broadcast("over_limit", {"ids": sorted(over)})

    def _user_slots_by_shard(self, users: dict[str, User]):
        """``({shard: {user: tx + rx}}, {user: (tx, rx)})`` for the limited users, from one scan
        of the user slots (the totals summed over shards, as ``segment_totals`` does)."""
        per_shard: dict[int, dict[str, int]] = {c.shard: {} for c in self.workers}
        live: dict[str, list[int]] = {}
        if users:
            for rec in scan_slots(self.table, kinds=[KIND_USER]):
                uid = rec["key"]
                if uid not in users:
                    continue
                total = live.setdefault(uid, [0, 0])
                total[0] += rec["tx"]
                total[1] += rec["rx"]
                if rec["shard"] in per_shard:
                    per_shard[rec["shard"]][uid] = rec["tx"] + rec["rx"]
        return per_shard, live

    async def _push_budgets(self, users: dict[str, User], used: dict[str, int],
                            per_shard: dict[int, dict[str, int]]) -> None:
        """Give each worker its users' caps, so the pumps cut a user at the byte where the
        limit is reached instead of one tick later (``ShardWriter.set_budgets``).

        A worker's cap for a user is the limit minus what the user moved everywhere but that
        worker's shard (carried, other shards, less the reset mark): exact while one worker
        carries the user; with several, each may overshoot by what the others moved since
        this scan.  Sent when it changed, and again to a restarted worker."""
        for child in self.workers:
            if child.link is None:
                continue
            here = per_shard.get(child.shard, {})
            # The slot's cap is on its own running total (tx + rx since the segment began),
            # so what the user moved elsewhere less its reset mark may be negative here.
            allow = {uid: max(0, user.traffic_limit - (used[uid] - here.get(uid, 0)))
                     for uid, user in users.items()}
            sent = self._budgets_sent.get(child.shard)
            if sent is not None and sent[0] is child.link and sent[1] == allow:
                continue
            try:
                await child.link.call("budgets", {"allow": allow}, 2.0)
                if sent is None or sent[0] is not child.link:
                    # A worker that (re)started knows nobody over the limit yet either.
                    await child.link.call("over_limit", {"ids": sorted(self.over_limit)}, 2.0)
            except CommandError as exc:
                log.warning("budgets not sent to %s: %s", child.name, exc)
                continue
            self._budgets_sent[child.shard] = (child.link, allow)

    # -- run --------------------------------------------------------------------------------
    async def run(self) -> int:
        self.stop_event = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_event.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        sock_path = self.config.command_socket
        if sock_path.exists():
            sock_path.unlink()
        server = await asyncio.start_unix_server(
            lambda r, w: serve_requests(r, w, self.handle_command), path=str(sock_path))
        os.chmod(sock_path, 0o600)
        self._make_children()
        for child in self.children:
            child.task = asyncio.ensure_future(self._keep_running(child))
        loops = [asyncio.ensure_future(self._snapshot_loop()),
                 asyncio.ensure_future(self._enforce_loop()),
                 asyncio.ensure_future(self._announce_when_ready())]
        await self.stop_event.wait()
        log.info("stopping")
        self.stopping = True
        for task in loops:
            task.cancel()
        server.close()
        await self._stop_children()
        try:
            segment.retire(self.table, self.store)
        except (sqlite3.Error, OSError) as exc:
            # Full or read-only disk: the segment stays, and the next start adopts it.
            log.warning("counters not folded into the store (%s); the counter segment is kept "
                        "and adopted at the next start", exc)
        try:
            sock_path.unlink()
        except FileNotFoundError:
            pass
        log.info("stopped")
        return self.exit_code

    async def _announce_when_ready(self) -> None:
        """"serving" is said once every child reports ready, not before."""
        await asyncio.gather(*(c.ready.wait() for c in self.children))
        c = self.config.control
        log.info("fastpath %s serving: control API http://%s:%d, %d worker(s)",
                 __version__, c.host, c.port, self.config.workers)
        exposure = exposure_line(self.config)
        if exposure:
            log.info("%s", exposure)

    async def _stop_children(self) -> None:
        live = [c for c in self.children if c.alive]
        for child in live:
            child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in live:
            try:
                await asyncio.wait_for(child.proc.wait(), max(0.05, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                log.warning("%s did not stop in time; killing it", child.name)
                child.proc.kill()
                await child.proc.wait()
        for child in self.children:
            if child.task:
                child.task.cancel()
            if child.link:
                child.link.close()


def serve(config_path: str | None, data_dir: str | None, use_uvloop: bool = True,
          reset_store: bool = False) -> int:
    """Exit codes: 0 after a stop by signal, 1 when the node cannot start (or a child cannot
    start, or keeps failing to restart), 2 for a config error or an unusable state store."""
    from fastpath.worker.event_loop import run
    setup_process_logging(None, "supervisor")
    try:
        sup = Supervisor(config_path, data_dir, use_uvloop=use_uvloop, reset_store=reset_store)
    except ConfigError as exc:
        print(f"fastpath: config error: {exc}", file=sys.stderr)
        return 2
    try:
        # Before anything is made: a node that cannot start leaves no first-start banner.
        preflight.check_node(sup.config)
        sup.prepare()
    except StoreUnusable as exc:
        print(f"fastpath: state store: {exc}", file=sys.stderr)
        return 2
    except preflight.StartupError as exc:
        print(f"fastpath: cannot start: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:     # a data dir that changed under us, a broken file
        print(f"fastpath: cannot start: data dir {sup.config.data_dir}: "
              f"{describe_startup_error(exc)}", file=sys.stderr)
        return 1
    return run(sup.run(), use_uvloop=use_uvloop)


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"
