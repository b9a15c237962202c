"""The node's one ledger: users, usage, baselines, settings, read and written the same way by
every face and by the supervisor.

Why one module: each face used to carry its own SQL and its own copy of the usage rule, and
the copies drifted (the supervisor, which enforces limits, did not clamp per direction while
the faces, which display usage, did).  Here the rule is written once (``used``), every write
is one transaction (``Ledger.write()`` yields a ``Book`` of named operations, so a face can
check and write several rows atomically without writing SQL), and one change watcher
(``Watcher``) serves every cache that reloads only when the database moved.

The SQL of the node lives in ``fastpath/store/`` only: faces call the ``Book``'s methods.
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Sequence

from fastpath.store.state_store import USER_COLUMNS, Conflict, NotFound, StateStore, User

# Baseline scope of "used toward the traffic limit" (the native reset and HY2 SCALE's
# reset-traffic move it; the supervisor enforces against it).
USAGE = "usage"
# Settings rows the data plane and the faces share.
CLIENTS_KEY = "hy2scale.clients"          # HY2 SCALE's outbound peers (the workers dial them)
REFUSED_DEVICES_KEY = "refused_devices"   # {"<user id>\t<ip>": until (epoch seconds)}

_ZERO = (0, 0)
_COLS = ", ".join(USER_COLUMNS)
_BATCH = 500     # parameters per ``IN (...)``: well under SQLite's limit


# -- the usage rule -------------------------------------------------------------------------------
def since(total: Sequence[int], mark: Sequence[int] | None) -> tuple[int, int]:
    """(tx, rx) counted since ``mark``, clamped at 0 per direction.  A total below its mark
    means the carried traffic was reset elsewhere (the native reset): that direction shows 0
    until it passes the mark again."""
    if mark is None:
        return total[0], total[1]
    tx, rx = total[0] - mark[0], total[1] - mark[1]
    return (tx if tx > 0 else 0), (rx if rx > 0 else 0)


def base(carried: Sequence[int] | None, mark: Sequence[int] | None) -> tuple[int, int]:
    """carried − baseline per direction, not clamped: what ``used_many`` adds live bytes to."""
    ctx, crx = carried if carried is not None else _ZERO
    if mark is None:
        return ctx, crx
    return ctx - mark[0], crx - mark[1]


def used_many(bases: Iterable[tuple], live: dict) -> list[int]:
    """Bytes (tx + rx) each user has used toward its limit: carried + live − baseline, clamped
    at 0 per direction.  The one rule: enforcement (supervisor, worker budgets) and every
    face's display reach it through here.  ``bases``: ``(id, btx, brx)`` rows (``base``);
    ``live``: ``{id: (tx, rx, ...)}``.  One loop for many users (10k in a listing), with
    conditional expressions rather than max(): a listing pays for every call per user."""
    out = []
    append = out.append
    get = live.get
    for uid, btx, brx in bases:
        rec = get(uid)
        if rec is not None:
            btx += rec[0]
            brx += rec[1]
        append((btx if btx > 0 else 0) + (brx if brx > 0 else 0))
    return out


def used(carried: Sequence[int] | None, live: Sequence[int] | None,
         mark: Sequence[int] | None) -> int:
    """``used_many`` for one user."""
    btx, brx = base(carried, mark)
    return used_many([(None, btx, brx)], {None: live} if live is not None else {})[0]


def add_live(carried: dict, live: dict) -> dict[str, tuple[int, int]]:
    """carried + live per id (``live`` values start with tx, rx)."""
    totals = dict(carried)
    for uid, rec in live.items():
        ctx, crx = totals.get(uid, _ZERO)
        totals[uid] = (ctx + rec[0], crx + rec[1])
    return totals


def integrity_conflict(exc: sqlite3.IntegrityError) -> Conflict:
    """A ``Conflict`` carrying SQLite's own text (faces quote it) and the column it names."""
    text = str(exc)
    conflict = Conflict(text)
    conflict.column = ("auth_secret" if "auth_secret" in text
                       else "id" if "users.id" in text else None)
    return conflict


def first_hops(paths, via) -> set:
    """The first hops of a user's (or a rule's) ``exit_paths`` and ``exit_via``."""
    out = {p.split("/")[0] for p in paths if isinstance(p, str) and p} if isinstance(paths, list) else set()
    if isinstance(via, str) and via:
        out.add(via.split("/")[0])
    return out


def _chunks(values: list) -> Iterator[list]:
    for start in range(0, len(values), _BATCH):
        yield values[start:start + _BATCH]


class Book:
    """One transaction's operations on the ledger (``Ledger.read()`` / ``Ledger.write()``).

    Writes that violate a unique key raise ``Conflict`` (see ``integrity_conflict``); the
    transaction then rolls back whole."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    # -- settings ---------------------------------------------------------------------------
    def setting(self, key: str, default=None):
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def settings(self, keys: Iterable[str]) -> dict:
        keys = list(keys)
        if not keys:
            return {}
        return {k: json.loads(v) for k, v in self._db.execute(
            f"SELECT key, value FROM settings WHERE key IN ({', '.join('?' * len(keys))})", keys)}

    def settings_with_prefix(self, prefix: str) -> dict:
        return {k: json.loads(v) for k, v in self._db.execute(
            "SELECT key, value FROM settings WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))}

    def set_setting(self, key: str, value) -> None:
        self._db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                         (key, json.dumps(value)))

    def delete_setting(self, key: str) -> None:
        self._db.execute("DELETE FROM settings WHERE key = ?", (key,))

    def delete_settings_with_prefix(self, prefix: str) -> None:
        self._db.execute("DELETE FROM settings WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))

    # -- users ------------------------------------------------------------------------------
    def users(self, source: str | None = None) -> list[User]:
        if source is None:
            rows = self._db.execute(f"SELECT {_COLS} FROM users ORDER BY id")
        else:
            rows = self._db.execute(f"SELECT {_COLS} FROM users WHERE source = ? ORDER BY id",
                                    (source,))
        return [User.from_row(r) for r in rows]

    def user(self, user_id: str, source: str | None = None) -> User | None:
        row = self._db.execute(f"SELECT {_COLS} FROM users WHERE id = ?", (user_id,)).fetchone()
        if row is None or (source is not None and row[6] != source):
            return None
        return User.from_row(row)

    def user_ids(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT id FROM users")]

    def credentials_except(self, source: str) -> list[User]:
        """Id, secret and source of every user not of ``source`` (what another face's ids
        and secrets must not clash with)."""
        return [User(id=r[0], auth_secret=r[1], source=r[2]) for r in self._db.execute(
            "SELECT id, auth_secret, source FROM users WHERE source != ?", (source,))]

    def sources_of(self, ids: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for part in _chunks(ids):
            out.update(self._db.execute(
                f"SELECT id, source FROM users WHERE id IN ({', '.join('?' * len(part))})", part))
        return out

    def owners_of(self, auth_secrets: list[str]) -> dict[str, str]:
        """``{secret: user id}`` of the given secrets that a user holds."""
        out: dict[str, str] = {}
        for part in _chunks(auth_secrets):
            out.update(self._db.execute(
                f"SELECT auth_secret, id FROM users WHERE auth_secret IN "
                f"({', '.join('?' * len(part))})", part))
        return out

    def username_holder(self, source: str, username: str, except_id: str) -> str | None:
        """The id of another user of ``source`` with this ``meta.username`` (any case)."""
        row = self._db.execute(
            "SELECT id FROM users WHERE source = ? AND id != ? AND "
            "lower(json_extract(meta, '$.username')) = lower(?)",
            (source, except_id, username)).fetchone()
        return row[0] if row else None

    def usernames_exiting_via(self, source: str, name: str, limit: int = 6) -> list[str]:
        """Usernames of the users of ``source`` with an exit path (``exit_paths`` or
        ``exit_via``) whose first hop is ``name``."""
        rows = self._db.execute(
            "SELECT json_extract(meta, '$.username'), json_extract(meta, '$.exit_paths'), "
            "json_extract(meta, '$.exit_via') FROM users WHERE source = ? ORDER BY 1",
            (source,)).fetchall()
        out = []
        for username, paths, via in rows:
            try:
                paths = json.loads(paths) if paths else []
            except ValueError:
                paths = []
            if name in first_hops(paths, via):
                out.append(username)
                if len(out) >= limit:
                    break
        return out

    def insert_users(self, users: Iterable[User]) -> None:
        try:
            self._db.executemany(f"INSERT INTO users ({_COLS}) VALUES "
                                 f"({', '.join('?' * len(USER_COLUMNS))})",
                                 [u.to_row() for u in users])
        except sqlite3.IntegrityError as exc:
            raise integrity_conflict(exc) from None

    def upsert_users(self, users: Iterable[User], keep_created: bool = False,
                     same_source: bool = False) -> None:
        """Insert or update on id only: a clash on ``auth_secret`` fails (INSERT OR REPLACE
        would delete the other user).  ``keep_created``: an update keeps the row's
        ``created``; ``same_source``: a row of another source is left as it is."""
        cols = [c for c in USER_COLUMNS[1:] if not (keep_created and c == "created")]
        try:
            self._db.executemany(
                f"INSERT INTO users ({_COLS}) VALUES ({', '.join('?' * len(USER_COLUMNS))}) "
                "ON CONFLICT(id) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in cols)
                + (" WHERE users.source = excluded.source" if same_source else ""),
                [u.to_row() for u in users])
        except sqlite3.IntegrityError as exc:
            raise integrity_conflict(exc) from None

    def update_user(self, user: User, source: str | None = None) -> bool:
        """Write every column of ``user``; False when no such user (of ``source``)."""
        sql = f"UPDATE users SET {', '.join(c + ' = ?' for c in USER_COLUMNS[1:])} WHERE id = ?"
        args = user.to_row()[1:] + (user.id,)
        if source is not None:
            sql += " AND source = ?"
            args += (source,)
        try:
            return self._db.execute(sql, args).rowcount > 0
        except sqlite3.IntegrityError as exc:
            raise integrity_conflict(exc) from None

    def delete_users(self, ids: Iterable[str], source: str | None = None,
                     keep_baselines: bool = False) -> int:
        """Remove users (of ``source``); their baselines too unless ``keep_baselines`` (a face
        that still has to report their last bytes keeps its own).  The number removed."""
        ids = list(ids)
        if source is None:
            n = sum(self._db.execute("DELETE FROM users WHERE id = ?", (uid,)).rowcount for uid in ids)
        else:
            n = sum(self._db.execute("DELETE FROM users WHERE id = ? AND source = ?",
                                     (uid, source)).rowcount for uid in ids)
        if not keep_baselines and n:
            self._db.executemany("DELETE FROM baselines WHERE user_id = ?", [(u,) for u in ids])
        return n

    def delete_source(self, source: str) -> None:
        """Every user of ``source`` out (their baselines stay: a restore puts them back)."""
        self._db.execute("DELETE FROM users WHERE source = ?", (source,))

    # -- traffic -----------------------------------------------------------------------------
    def carried(self, ids: list[str] | None = None) -> dict[str, tuple[int, int]]:
        if ids is None:
            return {r[0]: (r[1], r[2]) for r in self._db.execute("SELECT user_id, tx, rx FROM carried")}
        out = {}
        for part in _chunks(ids):
            out.update((r[0], (r[1], r[2])) for r in self._db.execute(
                f"SELECT user_id, tx, rx FROM carried WHERE user_id IN ({', '.join('?' * len(part))})",
                part))
        return out

    def carried_sum(self) -> tuple[int, int]:
        row = self._db.execute("SELECT COALESCE(SUM(tx), 0), COALESCE(SUM(rx), 0) FROM carried").fetchone()
        return row[0], row[1]

    def baselines(self, scope: str, ids: list[str] | None = None) -> dict[str, tuple[int, int]]:
        if ids is None:
            return {r[0]: (r[1], r[2]) for r in self._db.execute(
                "SELECT user_id, tx, rx FROM baselines WHERE scope = ?", (scope,))}
        out = {}
        for part in _chunks(ids):
            out.update((r[0], (r[1], r[2])) for r in self._db.execute(
                f"SELECT user_id, tx, rx FROM baselines WHERE scope = ? AND user_id IN "
                f"({', '.join('?' * len(part))})", [scope, *part]))
        return out

    def set_baselines(self, scope: str, marks: dict[str, Sequence[int]]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO baselines (scope, user_id, tx, rx) VALUES (?, ?, ?, ?)",
            [(scope, uid, m[0], m[1]) for uid, m in marks.items()])

    def adopt_baselines(self, scope: str, marks: dict[str, Sequence[int]]) -> None:
        """Give ids without a baseline in ``scope`` this one (ids with one keep theirs)."""
        self._db.executemany(
            "INSERT OR IGNORE INTO baselines (scope, user_id, tx, rx) VALUES (?, ?, ?, ?)",
            [(scope, uid, m[0], m[1]) for uid, m in marks.items()])

    def drop_baselines(self, scope: str, ids: Iterable[str]) -> None:
        self._db.executemany("DELETE FROM baselines WHERE scope = ? AND user_id = ?",
                             [(scope, uid) for uid in ids])


class Ledger:
    """The store seen as the node's model.  ``live`` gives the live segment's per-id records
    (``{id: (tx, rx, ...)}``), so usage adds what is counting right now."""

    def __init__(self, store: StateStore, live: Callable[[], dict] | None = None):
        self.store = store
        self._live = live

    @property
    def path(self) -> str:
        return self.store.path

    # -- transactions ----------------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[Book]:
        with self.store.transaction(immediate=False) as db:
            yield Book(db)

    @contextmanager
    def write(self) -> Iterator[Book]:
        """BEGIN IMMEDIATE: read-then-write units of every process serialize."""
        with self.store.transaction() as db:
            yield Book(db)

    def watcher(self) -> "Watcher":
        return Watcher(self.store.path)

    # -- users -----------------------------------------------------------------------------
    def users(self, source: str | None = None) -> list[User]:
        return self.store.list_users(source)

    def user(self, user_id: str, source: str | None = None) -> User | None:
        with self.read() as book:
            return book.user(user_id, source)

    def get_user(self, user_id: str) -> User:
        """The user, or ``NotFound``."""
        return self.store.get_user(user_id)

    def user_by_secret(self, secret: str) -> User | None:
        return self.store.user_by_secret(secret)

    def create_user(self, user: User) -> User:
        return self.store.create_user(user)

    def update_user(self, user_id: str, **changes) -> User:
        return self.store.update_user(user_id, **changes)

    def delete_user(self, user_id: str) -> None:
        self.store.delete_user(user_id)

    def replace_users(self, source: str, users: Iterable[User],
                      adopt_scope: str | None = None) -> tuple[list[str], list[str]]:
        """Make the users of ``source`` exactly ``users`` (see ``StateStore.replace_users``);
        with ``adopt_scope``, ids without a baseline there first get one at their current
        traffic, in the same transaction."""
        users = list(users)

        def adopt(db) -> None:
            self.adopt(Book(db), adopt_scope, [u.id for u in users])
        return self.store.replace_users(source, users,
                                        before=adopt if adopt_scope is not None else None)

    # -- settings ----------------------------------------------------------------------------
    def setting(self, key: str, default=None):
        return self.store.get_setting(key, default)

    def set_setting(self, key: str, value) -> None:
        self.store.set_setting(key, value)

    # -- traffic and usage -------------------------------------------------------------------
    def live(self) -> dict:
        return self._live() if self._live is not None else {}

    def totals(self, live: dict | None = None) -> dict[str, tuple[int, int]]:
        """All traffic per id across restarts: carried + the live segment."""
        return add_live(self.store.carried(), self.live() if live is None else live)

    def usage(self, ids: Iterable[str] | None = None, live: dict | None = None) -> dict[str, int]:
        """``{id: bytes used toward its limit}`` (``used``): of ``ids``, or of every id that
        has traffic."""
        live = self.live() if live is None else live
        with self.read() as book:
            if ids is None:
                carried = book.carried()
                marks = book.baselines(USAGE)
                ids = set(carried) | set(live)
            else:
                ids = list(ids)
                carried = book.carried(ids)
                marks = book.baselines(USAGE, ids)
        ids = list(ids)
        bases = [(uid, *base(carried.get(uid), marks.get(uid))) for uid in ids]
        return dict(zip(ids, used_many(bases, live)))

    def traffic(self, scope: str, clear: bool = False,
                ids: list[str] | None = None) -> dict[str, tuple[int, int]]:
        """``{id: (tx, rx)}`` since the scope's last clear (optionally only ``ids``); with
        ``clear`` the returned amounts become the new baseline in the same transaction, so
        concurrent clearers serialize and every byte is reported by exactly one clear."""
        if not clear:
            totals = self.totals()
            with self.read() as book:
                marks = book.baselines(scope)
            out = {uid: since(t, marks.get(uid)) for uid, t in totals.items()}
            return out if ids is None else {uid: out.get(uid, _ZERO) for uid in ids}
        with self.write() as book:
            totals = self.totals()
            if ids is not None:
                totals = {uid: totals.get(uid, _ZERO) for uid in ids}
            marks = book.baselines(scope)
            out = {uid: since(t, marks.get(uid)) for uid, t in totals.items()}
            book.set_baselines(scope, {uid: totals[uid] for uid, (tx, rx) in out.items() if tx or rx})
        return out

    def reset_usage(self, ids: list[str]) -> None:
        """Start the users' usage toward their limits again from now."""
        self.traffic(USAGE, clear=True, ids=ids)

    def adopt(self, book: Book, scope: str, ids: Iterable[str]) -> None:
        """Inside ``write()``: ids without a baseline in ``scope`` get one at their current
        traffic (so a re-used id does not report its past there)."""
        totals = self.totals()
        book.adopt_baselines(scope, {uid: totals.get(uid, _ZERO) for uid in ids})

    # -- device refusals (HY2 SCALE's DELETE /sessions/{key}; read by the workers) ----------
    def refuse_device(self, user_id: str, ip: str, seconds: float) -> None:
        """Write a device refusal (expired ones pruned), so workers that start while it runs
        refuse the device too; the live workers are told by command."""
        record_refusal(self.store, user_id, ip, seconds)

    def refused_devices(self) -> dict:
        rows = self.store.get_setting(REFUSED_DEVICES_KEY, {}) or {}
        return rows if isinstance(rows, dict) else {}


def record_refusal(store: StateStore, user_id: str, ip: str, seconds: float) -> None:
    now = time.time()
    with store.transaction() as db:
        book = Book(db)
        rows = book.setting(REFUSED_DEVICES_KEY, {}) or {}
        rows = {k: t for k, t in rows.items() if isinstance(t, (int, float)) and t > now}
        if seconds > 0:
            rows[f"{user_id}\t{ip}"] = now + seconds
        book.set_setting(REFUSED_DEVICES_KEY, rows)


class Watcher:
    """Says when the database changed, for caches that reload only then.

    It keeps a connection of its own: ``PRAGMA data_version`` on it moves whenever *any
    other* connection commits (another process, or this process's store connections), and
    not for its own commits, so a cache that writes through ``transaction(write=True)`` keeps
    its view current without reloading.  Not thread-safe: hold the cache's lock around it."""

    def __init__(self, path: str):
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._seen = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA busy_timeout=30000")
            self._db = db
        return self._db

    def _version(self) -> int:
        return self._conn().execute("PRAGMA data_version").fetchone()[0]

    def changed(self) -> bool:
        """Whether another connection committed since the last ``take()``."""
        return self._version() != self._seen

    @contextmanager
    def transaction(self, write: bool = False) -> Iterator[Book]:
        """A transaction on the watcher's own connection; a failure inside forgets what was
        seen, so the next read reloads."""
        db = self._conn()
        db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield Book(db)
        except BaseException:
            self._seen = None
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")

    def take(self) -> bool:
        """Inside ``transaction()``: True (and remembered) when the database moved since the
        last take, so the caller reloads from this same snapshot."""
        version = self._version()
        if version == self._seen:
            return False
        self._seen = version
        return True

    def forget(self) -> None:
        self._seen = None


__all__ = ["Book", "CLIENTS_KEY", "Conflict", "Ledger", "NotFound", "REFUSED_DEVICES_KEY", "USAGE",
           "Watcher", "add_live", "base", "integrity_conflict", "since", "used", "used_many"]
