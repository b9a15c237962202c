"""What a PasarGuard panel can ask of a fastpath node, independent of REST or gRPC.

The two transports (``rest.py``, ``grpc_service.py``) decode a request, check the key and call
one method here; everything that touches the store or the counters runs on one worker thread,
in arrival order, so a stream of user changes applies in the order the panel sent it.

Life cycle.  Start makes the panel's user set the node's ``pasarguard`` users and marks the
backend started (kept in the store, so a restart of the face keeps serving the panel without a
new Start); Stop removes those users (their connections close) and marks it stopped.  Every
other call needs a started backend.  A user change returns once the data-plane workers have
reloaded the user table, so the answer means "enforced".

keep_alive.  The reference stops its core when the panel is silent for ``keep_alive`` seconds
and users lose service until the panel comes back.  Here users keep their service; the silence
is logged, and Info's core version says so.
"""
from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from fastpath.control.node_model import NodeUnavailable
from fastpath.control.pasarguard import service_pb2 as pb
from fastpath.control.pasarguard import inbounds as panel_inbounds
from fastpath.control.pasarguard.accounting import (OUTBOUND_TAG, SCOPE_INBOUND, SCOPE_OUTBOUND,
                                           SCOPE_USERS, Accounting, Traffic)
from fastpath.control.pasarguard.inbound_stats import proxy_totals
from fastpath.control.pasarguard.errors import (FaceError, Failure, bad_request, not_found, not_started,
                                      refused)
from fastpath.control.pasarguard.system_stats import GcClock, HostSampler, backend_stats
from fastpath.control.pasarguard.users import (SOURCE, InboundMap, check_delta, check_full_set, convert,
                                      last_wins)
from fastpath import __version__
from fastpath.shm import KIND_CONNECTION, KIND_USER, STATE_CLOSED
from fastpath.store import User
from fastpath.store.state_store import Conflict
from fastpath.supervisor.command_channel import CommandClient, CommandError

log = logging.getLogger("fastpath.pasarguard")

# The level of the PasarGuard node API this face speaks.  The panel's client reads the node
# version (up to a "+") to pick features: 0.2.0 and later get user changes as chunked deltas.
PANEL_API_LEVEL = "0.2.0"
SESSION_SETTING = "pasarguard.session"

class UsersChangedNotifier:
    """Tells the supervisor the user table changed and waits for the workers to reload it.
    Concurrent changes share one reload: a caller returns once a reload that started after its
    change has finished."""

    def __init__(self, client, timeout: float = 15.0):
        self.client = client
        self.timeout = timeout
        self.requested = 0
        self.done = 0
        self.lock = asyncio.Lock()

    async def notify(self) -> None:
        self.requested += 1
        target = self.requested
        async with self.lock:
            if self.done >= target:
                return
            generation = self.requested
            try:
                await asyncio.to_thread(self.client.call, "users_changed", {}, self.timeout)
            except CommandError as exc:
                raise FaceError(Failure.UNAVAILABLE,
                                f"users saved, but the data plane did not confirm them: {exc}") from None
            self.done = generation


class PasarGuardFace:
    def __init__(self, node, settings, *, notifier: UsersChangedNotifier | None = None,
                 supervisor_pid: int | None = None):
        self.node = node
        self.settings = settings
        self.store = node.store
        self.ledger = node.ledger
        self.accounting = Accounting(node)
        self.notifier = notifier or UsersChangedNotifier(CommandClient(str(node.config.command_socket)))
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="pasarguard-store")
        self.supervisor_pid = supervisor_pid
        self.started = False
        self.keep_alive = 0
        self.inbounds = InboundMap(settings.inbound_tag)
        self.panel_inbounds = panel_inbounds.stored(self.store)   # node.yaml-form entries
        self.last_ok = time.monotonic()
        self.panel_away = False
        self.host = HostSampler()
        self.gc_clock = GcClock()
        self._restore()

    # -- session ----------------------------------------------------------------------------
    def _restore(self) -> None:
        session = self.ledger.setting(SESSION_SETTING)
        if isinstance(session, dict) and session.get("started"):
            self.started = True
            self.keep_alive = int(session.get("keep_alive") or 0)
            self.inbounds = InboundMap.from_json(self.settings.inbound_tag, session.get("inbounds") or {})
            log.info("PasarGuard backend resumed (started by the panel at %s)",
                     time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(session.get("at", 0))))

    def _save_session(self) -> None:
        if self.started:
            self.ledger.set_setting(SESSION_SETTING, {"started": True, "keep_alive": self.keep_alive,
                                                     "inbounds": self.inbounds.to_json(),
                                                     "at": time.time()})
        else:
            self.ledger.set_setting(SESSION_SETTING, {"started": False, "at": time.time()})

    @property
    def core_version(self) -> str:
        text = f"fastpath {__version__} hysteria2"
        if self.keep_alive:
            text += f" (keep_alive {self.keep_alive}s: users stay served while the panel is away)"
        return text

    @property
    def node_version(self) -> str:
        return f"{PANEL_API_LEVEL}+fastpath.{__version__}"

    def info(self) -> pb.BaseInfoResponse:
        return pb.BaseInfoResponse(started=self.started, core_version=self.core_version,
                                   node_version=self.node_version)

    def require_started(self) -> None:
        if not self.started:
            raise not_started()

    def touch(self) -> None:
        """A request of the panel succeeded."""
        self.last_ok = time.monotonic()
        if self.panel_away:
            self.panel_away = False
            log.info("the panel is back")

    async def watch_panel(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if not (self.started and self.keep_alive) or self.panel_away:
                continue
            silent = time.monotonic() - self.last_ok
            if silent > self.keep_alive:
                self.panel_away = True
                log.warning("no request from the panel for %ds (keep_alive %ds); users keep their "
                            "service until the panel stops the node", int(silent), self.keep_alive)

    async def sample_host(self, every: float = 2.0) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                self.host.sample()
            except Exception:
                log.exception("host statistics sample failed")

    async def run(self, fn, *args):
        """Run ``fn`` on the store thread; store and counter trouble become a 503."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.executor, fn, *args)
        except FaceError:
            raise
        except NodeUnavailable as exc:
            raise FaceError(Failure.UNAVAILABLE, exc.description) from None
        except Exception as exc:
            status = getattr(exc, "status", None)   # falcon.HTTPError from the node model
            if status is not None and getattr(exc, "description", None):
                raise FaceError(Failure.UNAVAILABLE, exc.description) from None
            log.exception("PasarGuard request failed")
            raise FaceError(Failure.UNAVAILABLE, f"the node could not serve this request: {exc}") from None

    # -- start / stop -----------------------------------------------------------------------
    async def start(self, backend: pb.Backend) -> pb.BaseInfoResponse:
        if backend.type not in (pb.XRAY, pb.WIREGUARD):
            raise bad_request(f"unknown backend type {backend.type}")
        inbounds = InboundMap.from_backend(self.settings.inbound_tag, backend.config,
                                           backend.exclude_inbounds)
        entries = await self.run(panel_inbounds.build, backend.config, backend.exclude_inbounds,
                                 self.node.config)
        changes = await self.run(convert, backend.users, inbounds)
        panel_inbounds.check_flows(changes, entries)
        previous = await self.run(panel_inbounds.stored, self.store)
        await panel_inbounds.apply(self.store, self.notifier, entries)
        try:
            changed, removed = await self.run(self._replace, changes)
        except BaseException:
            await panel_inbounds.apply(self.store, self.notifier, previous)
            raise
        self.panel_inbounds = entries
        self.inbounds = inbounds
        self.keep_alive = int(backend.keep_alive)
        self.started = True
        await self.run(self._save_session)
        await self.notifier.notify()
        log.info("backend started by the panel: %d user(s) (%d new or changed, %d removed); "
                 "keep_alive %s%s", len(changes) - sum(1 for c in changes if c.user is None),
                 len(changed), len(removed), f"{self.keep_alive}s" if self.keep_alive else "off",
                 f"; panel inbound tags {sorted(inbounds.aliases)} are this node's "
                 f"{self.settings.inbound_tag}" if inbounds.aliases else "")
        return self.info()

    async def stop(self) -> None:
        self.require_started()
        _changed, removed = await self.run(self._replace, [])
        await panel_inbounds.apply(self.store, self.notifier, [])
        self.panel_inbounds = []
        self.started = False
        self.keep_alive = 0
        await self.run(self._save_session)
        await self.notifier.notify()
        log.info("backend stopped by the panel: %d user(s) removed", len(removed))

    # -- users ------------------------------------------------------------------------------
    def _foreign_users(self) -> list[User]:
        """Users of the table the panel does not own (their ids and secrets are off limits)."""
        with self.ledger.read() as db:
            return db.credentials_except(SOURCE)

    def _replace(self, changes) -> tuple[list[str], list[str]]:
        users = check_full_set(changes, self._foreign_users())
        try:
            # The new ids' baselines are adopted in the same transaction as the users.
            return self.ledger.replace_users(SOURCE, users, adopt_scope=SCOPE_USERS)
        except Conflict as exc:
            raise FaceError(Failure.REFUSED, f"failed to update users: {exc}") from None

    def _apply_delta(self, changes) -> int:
        changes = last_wins(changes)
        with self.ledger.read() as db:
            source_of = db.sources_of([c.user_id for c in changes])
            owner_of = db.owners_of([c.user.auth_secret for c in changes if c.user and c.user.auth_secret])
        check_delta(changes, source_of, owner_of)
        upserts = [c.user for c in changes if c.user is not None]
        removals = [c.user_id for c in changes if c.user is None]
        now = time.time()
        for user in upserts:
            user.created = user.created or now
        try:
            with self.ledger.write() as db:
                self.accounting.adopt(db, [u.id for u in upserts])
                db.upsert_users(upserts, keep_created=True, same_source=True)
                # Baselines kept: the panel must still collect the bytes a removed user
                # moved since the last poll.
                db.delete_users(removals, SOURCE, keep_baselines=True)
        except Conflict as exc:
            raise FaceError(Failure.REFUSED, f"failed to update users: {exc}") from None
        return len(changes)

    async def sync_users(self, users) -> None:
        """SyncUsers: the panel's full user set."""
        self.require_started()
        changes = await self.run(convert, users, self.inbounds)
        panel_inbounds.check_flows(changes, self.panel_inbounds, refused)
        changed, removed = await self.run(self._replace, changes)
        if changed or removed:
            await self.notifier.notify()
        log.info("user set replaced by the panel: %d user(s), %d new or changed, %d removed",
                 len(changes), len(changed), len(removed))

    async def apply_delta(self, users) -> tuple[int, int]:
        """Add, update or (empty inbounds) remove these users in the store, all or none;
        returns (updated, removed).  The workers are not told: see ``sync_delta``."""
        self.require_started()
        changes = await self.run(convert, users, self.inbounds)
        panel_inbounds.check_flows(changes, self.panel_inbounds, refused)
        await self.run(self._apply_delta, changes)
        removed = sum(1 for c in changes if c.user is None)
        return len(changes) - removed, removed

    async def sync_delta(self, users) -> None:
        """SyncUser / SyncUsersChunked: apply the change and wait until the workers enforce it."""
        updated, removed = await self.apply_delta(users)
        await self.notifier.notify()
        log.info("users changed by the panel: %d updated, %d removed", updated, removed)

    # -- statistics -------------------------------------------------------------------------
    async def get_stats(self, req: pb.StatRequest) -> pb.StatResponse:
        self.require_started()
        kind = req.type
        if kind not in pb.StatType.values():
            raise bad_request(f"unknown stat type {kind}")
        return await self.run(self._stats, kind, req.name, req.reset)

    def _stats(self, kind: int, name: str, reset: bool) -> pb.StatResponse:
        acc = self.accounting
        if kind == pb.UsersStat:
            rows = acc.users(reset)
        elif kind == pb.UserStat:
            if not name:
                raise bad_request("UserStat needs the user's email in name")
            row = acc.user(name, reset)
            if row is None:
                raise not_found(f"user {name!r} not found")
            rows = [row]
        elif kind in (pb.Inbounds, pb.Inbound):
            tag = self.settings.inbound_tag
            proxies = sorted(e["tag"] for e in self.panel_inbounds)
            hysteria = kind == pb.Inbounds or name == tag or name in self.inbounds.aliases
            if kind == pb.Inbound and not hysteria and name not in proxies:
                raise not_found(f"inbound {name!r} not found")
            client = self.notifier.client
            totals = proxy_totals(self.store, client) if proxies and client is not None else {}
            rows = []
            if hysteria:
                minus = (sum(t[0] for t in totals.values()), sum(t[1] for t in totals.values()))
                row = acc.tag(SCOPE_INBOUND, tag, reset, minus=minus)
                rows.append(Traffic(name if kind == pb.Inbound else tag, row.uplink, row.downlink))
            for proxy in proxies:
                if kind == pb.Inbounds or name == proxy:
                    rows.append(acc.tag(SCOPE_INBOUND, proxy, reset,
                                        total=totals.get(proxy, (0, 0))))
        else:
            if kind == pb.Outbound and name != OUTBOUND_TAG:
                raise not_found(f"outbound {name!r} not found")
            rows = [acc.tag(SCOPE_OUTBOUND, OUTBOUND_TAG, reset)]
        out = pb.StatResponse()
        add = out.stats.add
        for row in rows:
            add(name=row.name, type="uplink", link="traffic", value=row.uplink)
            add(name=row.name, type="downlink", link="traffic", value=row.downlink)
        return out

    def _panel_user(self, name: str) -> User:
        if not name:
            raise bad_request("name (the user's email) is required")
        user = self.ledger.user(name)
        if user is None or user.source != SOURCE:
            raise not_found(f"user {name!r} not found")
        return user

    async def user_online(self, req: pb.StatRequest) -> pb.OnlineStatResponse:
        self.require_started()
        return await self.run(self._user_online, req.name)

    def _user_online(self, name: str) -> pb.OnlineStatResponse:
        self._panel_user(name)
        ips = self._connections(name)
        return pb.OnlineStatResponse(name=name, value=sum(n for n, _seen in ips.values()))

    async def user_online_ips(self, req: pb.StatRequest) -> pb.StatsOnlineIpListResponse:
        self.require_started()
        return await self.run(self._user_online_ips, req.name)

    def _user_online_ips(self, name: str) -> pb.StatsOnlineIpListResponse:
        self._panel_user(name)
        ips = self._connections(name)
        return pb.StatsOnlineIpListResponse(name=name, ips={ip: seen for ip, (_n, seen) in ips.items()})

    def _connections(self, name: str) -> dict[str, tuple[int, int]]:
        """ip → (open connections, last seen unix seconds) of one user, from its connection
        slots (their ``text_a`` is the client's ``ip:port``)."""
        slots = self.node.slots([KIND_USER, KIND_CONNECTION])
        mine = {(s["shard"], s["slot"]) for s in slots if s["kind"] == KIND_USER and s["key"] == name}
        out: dict[str, tuple[int, int]] = {}
        for s in slots:
            if s["kind"] != KIND_CONNECTION or s["state"] == STATE_CLOSED:
                continue
            if (s["shard"], s["user_slot"]) not in mine:
                continue
            ip = host_of(s["text_a"]) or "unknown"
            count, seen = out.get(ip, (0, 0))
            out[ip] = (count + 1, max(seen, s["last_active_ns"] // 1_000_000_000))
        return out

    def latency(self, req: pb.LatencyRequest) -> pb.LatencyResponse:
        """The node has one outbound, ``direct``: always alive, no probe delay."""
        self.require_started()
        if req.name and req.name != OUTBOUND_TAG:
            raise not_found(f"outbound {req.name!r} not found")
        now = int(time.time())
        return pb.LatencyResponse(latencies=[pb.Latency(name=OUTBOUND_TAG, alive=True, delay=0, link="",
                                                        last_seen_time=now, last_try_time=now,
                                                        source="fastpath")])

    def system_stats(self) -> pb.SystemStatsResponse:
        self.require_started()
        return self.host.snapshot(pb.SystemStatsResponse)

    async def backend_stats(self) -> pb.BackendStatsResponse:
        self.require_started()
        return await asyncio.to_thread(backend_stats, pb.BackendStatsResponse, self.gc_clock,
                                       self.supervisor_pid)


def host_of(address: str) -> str:
    """The host part of ``ip:port`` / ``[v6]:port`` (a bare address is returned as is)."""
    text = address.strip()
    if text.startswith("["):
        return text[1:].split("]", 1)[0]
    if text.count(":") == 1:
        return text.rsplit(":", 1)[0]
    return text
