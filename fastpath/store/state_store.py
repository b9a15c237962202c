"""The node's state store: one SQLite database (WAL) in the data dir.

It is the source of truth for users, settings and traffic carried across restarts; data-plane
workers reload it after a restart, so a lost command never leaves a worker wrong for long.
Each thread gets its own connection; every multi-row change is one transaction, so a change is
applied whole or not at all.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from fastpath.store.schema import MIGRATIONS

USER_COLUMNS = ("id", "auth_secret", "enabled", "traffic_limit", "expiry", "inbounds", "source",
                "meta", "created")


class StoreError(Exception):
    """A change the store refuses (conflict, unknown id); the message says why."""


class StoreUnusable(StoreError):
    """The database file cannot be used as it is (missing on a used data dir, empty, not a
    database, damaged); the message says what was found and how to recover, in one line."""


RECOVERY = "restore state.db from a backup, or start with --reset-store to start empty on purpose"


class NotFound(StoreError):
    pass


class Conflict(StoreError):
    pass


@dataclass
class User:
    id: str
    auth_secret: str | None = None
    enabled: bool = True
    traffic_limit: int = 0          # bytes, tx + rx; 0 = unlimited
    expiry: float | None = None     # unix seconds; None = never
    inbounds: list[str] = field(default_factory=list)
    source: str = "native"
    meta: dict = field(default_factory=dict)
    created: float = 0.0

    def refused_reason(self, used: int, now: float | None = None) -> str | None:
        """Why this user may not connect now, or None."""
        if not self.enabled:
            return "disabled"
        if self.expiry is not None and (now or time.time()) >= self.expiry:
            return "expired"
        if self.traffic_limit and used >= self.traffic_limit:
            return "traffic limit reached"
        return None

    def to_row(self) -> tuple:
        return (self.id, self.auth_secret, int(self.enabled), int(self.traffic_limit), self.expiry,
                json.dumps(self.inbounds), self.source, json.dumps(self.meta), self.created)

    @classmethod
    def from_row(cls, row) -> "User":
        return cls(id=row[0], auth_secret=row[1], enabled=bool(row[2]), traffic_limit=row[3],
                   expiry=row[4], inbounds=json.loads(row[5]), source=row[6],
                   meta=json.loads(row[7]), created=row[8])


class StateStore:
    def __init__(self, path: str | Path):
        self.path = str(path)
        self._local = threading.local()
        _create_private(self.path)
        try:
            with self.transaction() as db:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version > len(MIGRATIONS):
                    raise StoreError(f"{self.path}: schema version {version} is newer than this "
                                     f"fastpath ({len(MIGRATIONS)})")
                for number in range(version, len(MIGRATIONS)):
                    # executescript() would commit midway; run statement by statement instead.
                    for statement in MIGRATIONS[number].split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(f"PRAGMA user_version = {number + 1}")
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreUnusable(f"{self.path} is unreadable ({exc}); {RECOVERY}") from None
        _restrict(self.path)

    @classmethod
    def open_checked(cls, path: str | Path, *, used: bool, reset: bool = False) -> "StateStore":
        """Open the store at start-up, refusing to start empty by mistake.

        On a used data dir (``used``: its secrets exist), a missing or empty file, one that is
        not a database, or one that fails SQLite's quick check is refused with
        ``StoreUnusable``.  ``reset`` moves such a file aside (``state.db.unusable-<time>``) and
        starts with an empty store, on purpose."""
        path = Path(path)
        problem = None
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = None
        if size is None and used:
            problem = f"{path} is missing although the data dir has been used (secrets.json exists)"
        elif size == 0 and used:
            problem = f"{path} is empty (0 bytes) although the data dir has been used"
        if problem is None:
            try:
                store = cls(path)
                bad = store._db().execute("PRAGMA quick_check").fetchone()[0]
                if bad != "ok":
                    store.close()
                    raise StoreUnusable(f"{path} is damaged (quick_check: {bad}); {RECOVERY}")
                return store
            except sqlite3.DatabaseError as exc:
                problem = f"{path} is unreadable ({exc})"
            except StoreUnusable as exc:
                if not reset:
                    raise
                problem = str(exc)
        if not reset:
            raise StoreUnusable(f"{problem}; {RECOVERY}")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            old = Path(str(path) + suffix)
            if old.exists():
                os.replace(old, Path(f"{path}.unusable-{stamp}{suffix}"))
        return cls(path)

    # -- connections and transactions -------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before the API answers 2xx for it (NORMAL in WAL mode
            # can lose the last commits on power loss).
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
        return db

    @contextmanager
    def transaction(self, immediate: bool = True) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work.  ``immediate`` takes the write lock up front, so two
        read-then-write transactions (e.g. two API workers clearing counters) serialize."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- users ---------------------------------------------------------------------------------
    def list_users(self, source: str | None = None) -> list[User]:
        sql = f"SELECT {', '.join(USER_COLUMNS)} FROM users"
        args: tuple = ()
        if source is not None:
            sql += " WHERE source = ?"
            args = (source,)
        return [User.from_row(r) for r in self._db().execute(sql + " ORDER BY id", args)]

    def get_user(self, user_id: str) -> User:
        row = self._db().execute(f"SELECT {', '.join(USER_COLUMNS)} FROM users WHERE id = ?",
                                 (user_id,)).fetchone()
        if row is None:
            raise NotFound(f"user {user_id!r} not found")
        return User.from_row(row)

    def user_by_secret(self, secret: str) -> User | None:
        row = self._db().execute(
            f"SELECT {', '.join(USER_COLUMNS)} FROM users WHERE auth_secret = ?",
            (secret,)).fetchone()
        return User.from_row(row) if row else None

    def create_user(self, user: User) -> User:
        if not user.created:
            user.created = time.time()
        try:
            with self.transaction() as db:
                db.execute(f"INSERT INTO users ({', '.join(USER_COLUMNS)}) VALUES "
                           f"({', '.join('?' * len(USER_COLUMNS))})", user.to_row())
        except sqlite3.IntegrityError as exc:
            raise Conflict(_conflict_message(exc, user)) from None
        return user

    def update_user(self, user_id: str, **changes) -> User:
        unknown = set(changes) - set(USER_COLUMNS[1:])
        if unknown:
            raise StoreError(f"unknown user fields: {', '.join(sorted(unknown))}")
        try:
            with self.transaction() as db:
                row = db.execute(f"SELECT {', '.join(USER_COLUMNS)} FROM users WHERE id = ?",
                                 (user_id,)).fetchone()
                if row is None:
                    raise NotFound(f"user {user_id!r} not found")
                user = User.from_row(row)
                for key, value in changes.items():
                    setattr(user, key, value)
                db.execute(f"UPDATE users SET {', '.join(c + ' = ?' for c in USER_COLUMNS[1:])} "
                           f"WHERE id = ?", user.to_row()[1:] + (user_id,))
        except sqlite3.IntegrityError as exc:
            raise Conflict(_conflict_message(exc, user)) from None
        return user

    def delete_user(self, user_id: str) -> None:
        with self.transaction() as db:
            if db.execute("DELETE FROM users WHERE id = ?", (user_id,)).rowcount == 0:
                raise NotFound(f"user {user_id!r} not found")
            db.execute("DELETE FROM baselines WHERE user_id = ?", (user_id,))

    def replace_users(self, source: str, users: Iterable[User],
                      before=None) -> tuple[list[str], list[str]]:
        """Make the users of ``source`` exactly ``users`` in one transaction (``before(db)``
        runs first inside it: the ledger adopts baselines there).

        Returns (added or changed ids, removed
        ids) so the caller can tell the data plane whom to cut off.
        """
        users = list(users)
        wanted = {u.id: u for u in users}
        if len(wanted) != len(users):
            raise Conflict("duplicate user ids in the new set")
        changed: list[str] = []
        try:
            with self.transaction() as db:
                if before is not None:
                    before(db)
                existing = {r[0]: User.from_row(r) for r in db.execute(
                    f"SELECT {', '.join(USER_COLUMNS)} FROM users WHERE source = ?", (source,))}
                removed = [uid for uid in existing if uid not in wanted]
                db.executemany("DELETE FROM users WHERE id = ?", [(u,) for u in removed])
                now = time.time()
                for user in users:
                    user.source = source
                    old = existing.get(user.id)
                    if old is not None:
                        user.created = old.created
                        if old.to_row() == user.to_row():
                            continue
                    else:
                        user.created = user.created or now
                    changed.append(user.id)
                    # An upsert on id only: a clash on auth_secret must fail, not delete the
                    # other user as INSERT OR REPLACE would.
                    db.execute(f"INSERT INTO users ({', '.join(USER_COLUMNS)}) VALUES "
                               f"({', '.join('?' * len(USER_COLUMNS))}) ON CONFLICT(id) DO UPDATE SET "
                               + ", ".join(f"{c} = excluded.{c}" for c in USER_COLUMNS[1:]),
                               user.to_row())
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"user set refused: {exc}") from None
        return changed, removed

    # -- settings ------------------------------------------------------------------------------
    def get_setting(self, key: str, default=None):
        row = self._db().execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_setting(self, key: str, value) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                       (key, json.dumps(value)))

    def swap_setting(self, key: str, value, expect, default=None) -> bool:
        """Write ``value`` only if the stored one still is ``expect`` (``default`` when there
        is none), in one transaction: False if another process changed it since it was read.
        How a face that checks a whole list before writing it stays atomic across the API's
        processes."""
        with self.transaction() as db:
            row = db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
            if (json.loads(row[0]) if row else default) != expect:
                return False
            db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                       (key, json.dumps(value)))
        return True

    # -- traffic carried across counter segments -----------------------------------------------
    def snapshot_segment(self, segment_id: int, totals: dict[str, tuple[int, int]]) -> None:
        """Record the live totals of a segment, so a crash that loses the segment loses at most
        what was counted since the last snapshot."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO segment_snapshots (segment_id, user_id, tx, rx) "
                "VALUES (?, ?, ?, ?)",
                [(segment_id, uid, tx, rx) for uid, (tx, rx) in totals.items()])

    def retire_segment(self, segment_id: int, totals: dict[str, tuple[int, int]] | None) -> None:
        """Fold a segment's totals (given, or its last snapshot) into the carried counts, once: a retired segment is never adopted or folded again."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM retired_segments WHERE segment_id = ?",
                          (segment_id,)).fetchone():
                return
            if totals is None:
                totals = {uid: (tx, rx) for uid, tx, rx in db.execute(
                    "SELECT user_id, tx, rx FROM segment_snapshots WHERE segment_id = ?",
                    (segment_id,))}
            for uid, (tx, rx) in totals.items():
                db.execute("INSERT INTO carried (user_id, tx, rx) VALUES (?, ?, ?) "
                           "ON CONFLICT(user_id) DO UPDATE SET tx = tx + excluded.tx, "
                           "rx = rx + excluded.rx", (uid, tx, rx))
            db.execute("DELETE FROM segment_snapshots WHERE segment_id = ?", (segment_id,))
            db.execute("INSERT INTO retired_segments (segment_id, retired_at) VALUES (?, ?)",
                       (segment_id, time.time()))

    def is_retired(self, segment_id: int) -> bool:
        return self._db().execute("SELECT 1 FROM retired_segments WHERE segment_id = ?",
                                  (segment_id,)).fetchone() is not None

    def unretired_snapshots(self) -> list[int]:
        return [r[0] for r in self._db().execute(
            "SELECT DISTINCT segment_id FROM segment_snapshots WHERE segment_id NOT IN "
            "(SELECT segment_id FROM retired_segments)")]

    def carried(self) -> dict[str, tuple[int, int]]:
        """Bytes per auth id counted in retired segments."""
        return {r[0]: (r[1], r[2]) for r in self._db().execute(
            "SELECT user_id, tx, rx FROM carried")}

    def reset_carried(self, user_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM carried WHERE user_id = ?", (user_id,))


def _create_private(path: str) -> None:
    """Create the database file 0600 before SQLite does (it would use the umask, typically
    0644); SQLite gives the -wal and -shm files the mode of the database file."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def _restrict(path: str) -> None:
    """Bring a store made by an older version (0644) to 0600, with its -wal and -shm."""
    for suffix in ("", "-wal", "-shm"):
        try:
            if os.stat(path + suffix).st_mode & 0o077:
                os.chmod(path + suffix, 0o600)
        except (FileNotFoundError, PermissionError):
            pass


def _conflict_message(exc: sqlite3.IntegrityError, user: User) -> str:
    text = str(exc)
    if "auth_secret" in text:
        return "another user already has this auth secret"
    if "users.id" in text:
        return f"user {user.id!r} already exists"
    return f"conflict: {text}"
