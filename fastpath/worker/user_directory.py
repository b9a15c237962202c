"""The worker's view of who may use the node: the store's users, cached, plus the set of users
the supervisor found over their traffic limit.  Services ask it at auth time and are told when
users must be cut off."""
from __future__ import annotations

import time
from typing import Callable, Iterable

from fastpath.store import StateStore, User
from fastpath.store.ledger import REFUSED_DEVICES_KEY

class UserDirectory:
    def __init__(self, store: StateStore):
        self.store = store
        self.by_id: dict[str, User] = {}
        self.by_secret: dict[str, User] = {}
        self.over_limit: set[str] = set()
        self._cutoff_listeners: list[Callable[[set[str]], None]] = []
        # (user id, remote ip) -> monotonic time until which that device is refused at auth
        # (a device kicked through the HY2 SCALE face's DELETE /sessions/{key}).
        self.refused_devices: dict[tuple[str, str], float] = {}
        self._device_listeners: list[Callable[[str, str], int]] = []
        self.next_expiry = float("inf")
        self.reload()
        self._load_refusals()


    def on_cutoff(self, listener: Callable[[set[str]], None]) -> None:
        """``listener(ids)`` is called with users whose live connections must close now."""
        self._cutoff_listeners.append(listener)

    def reload(self) -> set[str]:
        """Reread the store; cut off users that were removed or are no longer allowed."""
        before = self.by_id
        users = self.store.list_users()
        self.by_id = {u.id: u for u in users}
        self.by_secret = {u.auth_secret: u for u in users if u.auth_secret}
        now = time.time()
        gone = {uid for uid in before if uid not in self.by_id}
        gone |= {u.id for u in users if u.refused_reason(0, now)}
        self.next_expiry = min((u.expiry for u in users if u.expiry is not None and u.expiry > now),
                               default=float("inf"))
        self._cut(gone)
        return gone

    def check_expiry(self, now: float | None = None) -> set[str]:
        """Cut off users whose expiry has just passed (called about once a second), so a
        connected user does not outlive its expiry until the next reload."""
        now = time.time() if now is None else now
        if now < self.next_expiry:
            return set()
        due = {u.id for u in self.by_id.values()
               if u.expiry is not None and self.next_expiry <= u.expiry <= now}
        self.next_expiry = min((u.expiry for u in self.by_id.values()
                                if u.expiry is not None and u.expiry > now), default=float("inf"))
        self._cut(due)
        return due

    # -- refused devices ---------------------------------------------------------------------
    def on_device_cutoff(self, listener: Callable[[str, str], int]) -> None:
        """``listener(user_id, ip) -> closed`` closes that device's live connections."""
        self._device_listeners.append(listener)

    def refuse_device(self, user_id: str, ip: str, seconds: float) -> int:
        """Close every connection of ``user_id`` from ``ip`` and refuse it at auth for
        ``seconds``; the number of connections closed."""
        now = time.monotonic()
        self.refused_devices = {k: t for k, t in self.refused_devices.items() if t > now}
        if seconds > 0:
            self.refused_devices[(user_id, ip)] = now + seconds
        return sum(listener(user_id, ip) or 0 for listener in self._device_listeners)

    def _load_refusals(self) -> None:
        """The refusals still running, as written to the store by whoever ordered them
        (``REFUSED_DEVICES_KEY``): a worker that starts (or restarts) mid-refusal keeps it."""
        rows = self.store.get_setting(REFUSED_DEVICES_KEY, {}) or {}
        now, mono = time.time(), time.monotonic()
        for key, until in rows.items() if isinstance(rows, dict) else ():
            user, sep, ip = str(key).partition("\t")
            if sep and isinstance(until, (int, float)) and until > now:
                self.refused_devices[(user, ip)] = mono + (until - now)

    def device_refused(self, user_id: str, addr: str) -> bool:
        """Whether ``user_id`` connecting from ``addr`` ("ip:port", "[v6]:port") is refused."""
        if not self.refused_devices:
            return False
        key = (user_id, addr.rpartition(":")[0].strip("[]") if ":" in addr else addr)
        until = self.refused_devices.get(key)
        if until is None:
            return False
        if time.monotonic() >= until:
            del self.refused_devices[key]
            return False
        return True

    def set_over_limit(self, ids: Iterable[str]) -> None:
        ids = set(ids)
        fresh = ids - self.over_limit
        self.over_limit = ids
        self._cut(fresh)

    def _cut(self, ids: set[str]) -> None:
        if ids:
            for listener in self._cutoff_listeners:
                listener(set(ids))

    def refused_reason(self, user_id: str) -> str | None:
        """Why a user of the table may not connect now (None for ids the table does not know:
        those come from the configured auth backend, which decided already)."""
        user = self.by_id.get(user_id)
        if user is None:
            return None
        if user_id in self.over_limit:
            return "traffic limit reached"
        return user.refused_reason(0)

    def authenticate(self, secret: str, inbound: str | None = None) -> tuple[User | None, str | None]:
        """The table user owning ``secret`` and why it is refused (None if allowed).

        A user whose ``inbounds`` list is not empty may use only the inbounds it names (how a
        panel scopes a user to some listeners); an empty list allows every inbound."""
        user = self.by_secret.get(secret)
        if user is None:
            return None, "unknown credentials"
        if inbound is not None and user.inbounds and inbound not in user.inbounds:
            return user, f"not allowed on inbound {inbound}"
        return user, self.refused_reason(user.id)
