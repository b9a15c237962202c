"""The stream relay's tables in the state store: registered streams and webhooks.

The control face writes them; data-plane workers read them (a worker that restarts, or misses
a command, reloads from here) and fold their counters and failover events back in.  Every
change is one transaction.
"""
from __future__ import annotations

import json
import secrets
import sqlite3
import time
from dataclasses import dataclass, field

from fastpath.store.state_store import Conflict, StateStore

STREAM_KINDS = ("hls", "direct", "vod", "transcode")

_STREAM_COLUMNS = ("id", "dedup_key", "url", "kind", "failover_urls", "user_agent", "headers",
                   "strict_live_ts", "sticky", "metadata", "profile", "profile_variables",
                   "failover_index", "failover_attempts", "last_failover", "error_count",
                   "bytes_in", "bytes_served", "segments_served", "created", "last_access",
                   "failover_resolver_url", "resolved_url", "resolved_count")
_SELECT_STREAM = f"SELECT {', '.join(_STREAM_COLUMNS)} FROM media_streams"


@dataclass
class MediaStream:
    id: str
    url: str
    kind: str
    dedup_key: str = ""
    failover_urls: list[str] = field(default_factory=list)
    user_agent: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    strict_live_ts: bool = False
    sticky: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    profile: str | None = None
    profile_variables: dict[str, str] = field(default_factory=dict)
    failover_index: int = 0
    failover_attempts: int = 0
    last_failover: float | None = None
    error_count: int = 0
    bytes_in: int = 0
    bytes_served: int = 0
    segments_served: int = 0
    created: float = 0.0
    last_access: float | None = None
    # m3u-proxy's failover resolver: asked for the next URL when the current one fails; its
    # last answer is the URL after the list, and ``resolved_count`` how many were taken.
    failover_resolver_url: str | None = None
    resolved_url: str | None = None
    resolved_count: int = 0

    @property
    def urls(self) -> list[str]:
        """Primary first, then the failover URLs in order, then the resolver's last answer
        (when it gave one): every URL the relay may be on, so one index names each."""
        if self.resolved_url:
            return [self.url, *self.failover_urls, self.resolved_url]
        return [self.url, *self.failover_urls]

    @property
    def resolved_index(self) -> int:
        """The index of the resolver's answer in ``urls`` (the slot after the list)."""
        return len(self.failover_urls) + 1

    @property
    def has_failover(self) -> bool:
        return bool(self.failover_urls or self.failover_resolver_url)

    def failover_position(self, index: int) -> int:
        """m3u-proxy's ``current_failover_index`` of URL ``index``: a position in
        ``failover_urls`` (0 on the primary and on ``failover_urls[0]``), and on the
        resolver's answer the number of answers taken (m3u-proxy adds 1 per answer)."""
        if self.resolved_url and index == self.resolved_index:
            return self.resolved_count
        return max(index - 1, 0)

    @classmethod
    def from_row(cls, row) -> "MediaStream":
        d = dict(zip(_STREAM_COLUMNS, row))
        for name in ("failover_urls", "headers", "metadata", "profile_variables"):
            d[name] = json.loads(d[name])
        d["strict_live_ts"] = bool(d["strict_live_ts"])
        d["sticky"] = bool(d["sticky"])
        return cls(**d)


@dataclass
class Webhook:
    url: str
    events: list[str]
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    retry_attempts: int = 3
    created: float = 0.0


def new_stream_id() -> str:
    """Random, unguessable ids (a digest of the URL would let anyone who knows a channel's
    URL find its stream)."""
    return secrets.token_hex(12)


def get_stream(store: StateStore, stream_id: str) -> MediaStream | None:
    with store.transaction(immediate=False) as db:
        row = db.execute(_SELECT_STREAM + " WHERE id = ?", (stream_id,)).fetchone()
    return MediaStream.from_row(row) if row else None


def list_streams(store: StateStore) -> list[MediaStream]:
    with store.transaction(immediate=False) as db:
        rows = db.execute(_SELECT_STREAM + " ORDER BY created, id").fetchall()
    return [MediaStream.from_row(r) for r in rows]


def put_stream(store: StateStore, stream: MediaStream, *, update: set[str] | None = None) -> tuple[MediaStream, bool]:
    """Register ``stream``, or return the stream already registered under its dedup key (the
    same URL twice is the same stream).  For an existing stream, the fields named in ``update``
    take the new values.  Returns (stored stream, created?)."""
    if stream.kind not in STREAM_KINDS:
        raise ValueError(f"unknown stream kind {stream.kind!r}")
    if not stream.dedup_key:
        stream.dedup_key = stream.url
    with store.transaction() as db:
        row = db.execute(_SELECT_STREAM + " WHERE dedup_key = ?", (stream.dedup_key,)).fetchone()
        if row is not None:
            old = MediaStream.from_row(row)
            changes = {name: getattr(stream, name) for name in (update or ())}
            if changes:
                if any(getattr(old, name) != changes[name]
                       for name in ("failover_urls", "failover_resolver_url") if name in changes):
                    # The resolver's last answer belonged to the old failover settings.
                    old.resolved_url, old.resolved_count = None, 0
                for name, value in changes.items():
                    setattr(old, name, value)
                if old.failover_index >= len(old.urls):
                    old.failover_index = 0
                _write_stream(db, old, replace=True)
            return old, False
        if not stream.id:
            stream.id = new_stream_id()
        stream.created = stream.created or time.time()
        try:
            _write_stream(db, stream, replace=False)
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"stream refused: {exc}") from None
    return stream, True


def _write_stream(db, s: MediaStream, *, replace: bool) -> None:
    values = (s.id, s.dedup_key, s.url, s.kind, json.dumps(s.failover_urls), s.user_agent,
              json.dumps(s.headers), int(s.strict_live_ts), int(s.sticky), json.dumps(s.metadata),
              s.profile, json.dumps(s.profile_variables), s.failover_index, s.failover_attempts,
              s.last_failover, s.error_count, s.bytes_in, s.bytes_served, s.segments_served,
              s.created, s.last_access, s.failover_resolver_url, s.resolved_url, s.resolved_count)
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    db.execute(f"{verb} INTO media_streams ({', '.join(_STREAM_COLUMNS)}) VALUES "
               f"({', '.join('?' * len(_STREAM_COLUMNS))})", values)


def delete_stream(store: StateStore, stream_id: str) -> bool:
    with store.transaction() as db:
        return db.execute("DELETE FROM media_streams WHERE id = ?", (stream_id,)).rowcount > 0


def record_failover(store: StateStore, stream_id: str, index: int, when: float | None = None) -> MediaStream | None:
    """A switch to URL ``index`` (0 = primary): counted, and remembered as the stream's current
    URL so other workers and a restarted node start there."""
    with store.transaction() as db:
        db.execute("UPDATE media_streams SET failover_index = ?, "
                   "failover_attempts = failover_attempts + 1, last_failover = ? WHERE id = ?",
                   (int(index), when or time.time(), stream_id))
        row = db.execute(_SELECT_STREAM + " WHERE id = ?", (stream_id,)).fetchone()
    return MediaStream.from_row(row) if row else None


def set_current_index(store: StateStore, stream_id: str, index: int) -> None:
    """Return to a URL without counting a failover (e.g. back to a recovered primary)."""
    with store.transaction() as db:
        db.execute("UPDATE media_streams SET failover_index = ? WHERE id = ?", (int(index), stream_id))


def add_errors(store: StateStore, stream_id: str, n: int = 1) -> None:
    with store.transaction() as db:
        db.execute("UPDATE media_streams SET error_count = error_count + ? WHERE id = ?",
                   (int(n), stream_id))


def set_kind(store: StateStore, stream_id: str, kind: str) -> None:
    """The content told a different type than the URL (e.g. an HLS playlist behind /live/)."""
    if kind not in STREAM_KINDS:
        raise ValueError(f"unknown stream kind {kind!r}")
    with store.transaction() as db:
        db.execute("UPDATE media_streams SET kind = ? WHERE id = ?", (kind, stream_id))


def fold_counts(store: StateStore, stream_id: str, *, bytes_in: int = 0, bytes_served: int = 0,
                segments_served: int = 0, last_access: float | None = None) -> None:
    """Add a finished relay's counters to the stream's lasting totals."""
    with store.transaction() as db:
        db.execute("UPDATE media_streams SET bytes_in = bytes_in + ?, "
                   "bytes_served = bytes_served + ?, segments_served = segments_served + ?, "
                   "last_access = MAX(COALESCE(last_access, 0), ?) WHERE id = ?",
                   (int(bytes_in), int(bytes_served), int(segments_served),
                    last_access or 0.0, stream_id))


def touch(store: StateStore, stream_id: str, when: float | None = None) -> None:
    with store.transaction() as db:
        db.execute("UPDATE media_streams SET last_access = ? WHERE id = ?",
                   (when or time.time(), stream_id))


# -- webhooks ---------------------------------------------------------------------------------
def put_webhook(store: StateStore, hook: Webhook) -> Webhook:
    """Register (or re-register, replacing its settings) the hook at ``hook.url``."""
    hook.created = hook.created or time.time()
    with store.transaction() as db:
        db.execute("INSERT OR REPLACE INTO media_webhooks (url, events, headers, timeout, "
                   "retry_attempts, created) VALUES (?, ?, ?, ?, ?, ?)",
                   (hook.url, json.dumps(hook.events), json.dumps(hook.headers), float(hook.timeout),
                    int(hook.retry_attempts), hook.created))
    return hook


def list_webhooks(store: StateStore) -> list[Webhook]:
    with store.transaction(immediate=False) as db:
        rows = db.execute("SELECT url, events, headers, timeout, retry_attempts, created "
                          "FROM media_webhooks ORDER BY created, url").fetchall()
    return [Webhook(url=r[0], events=json.loads(r[1]), headers=json.loads(r[2]), timeout=r[3],
                    retry_attempts=r[4], created=r[5]) for r in rows]


def delete_webhook(store: StateStore, url: str) -> bool:
    with store.transaction() as db:
        return db.execute("DELETE FROM media_webhooks WHERE url = ?", (url,)).rowcount > 0


# -- the key that signs rewritten playlist references ------------------------------------------
SIGNING_KEY_SETTING = "media.signing_key"


def signing_key(store: StateStore) -> bytes:
    """The node's key for segment references, created once; every worker reads the same one."""
    with store.transaction() as db:
        row = db.execute("SELECT value FROM settings WHERE key = ?", (SIGNING_KEY_SETTING,)).fetchone()
        if row is None:
            value = secrets.token_hex(32)
            db.execute("INSERT INTO settings (key, value) VALUES (?, ?)",
                       (SIGNING_KEY_SETTING, json.dumps(value)))
        else:
            value = json.loads(row[0])
    return bytes.fromhex(value)


# -- node-wide presence and event claims (several workers, one node) ---------------------------
# Each worker relays a stream on its own, so "the first viewer anywhere", "the last viewer
# gone" and "the stream switched upstream" are node facts no single worker sees.  SQLite's
# write lock already serialises the workers' transactions, so one small row per (stream,
# viewer, worker) and a compare-and-set on the stream's index decide who fires an event.
def presence_join(store: StateStore, stream_id: str, client_id: str, shard: int) -> bool:
    """Worker ``shard`` holds ``client_id`` of ``stream_id`` ('' = the stream itself) once more;
    True when nobody on the node held it before (the node-wide first)."""
    with store.transaction() as db:
        db.execute("INSERT INTO media_presence (stream_id, client_id, shard, refs) VALUES (?, ?, ?, 1) "
                   "ON CONFLICT (stream_id, client_id, shard) DO UPDATE SET refs = refs + 1",
                   (stream_id, client_id, int(shard)))
        total = db.execute("SELECT SUM(refs) FROM media_presence WHERE stream_id = ? AND client_id = ?",
                           (stream_id, client_id)).fetchone()[0]
    return total == 1


def presence_leave(store: StateStore, stream_id: str, client_id: str, shard: int) -> bool:
    """The reverse of ``presence_join``; True when nobody on the node holds it any more."""
    with store.transaction() as db:
        cur = db.execute("UPDATE media_presence SET refs = refs - 1 WHERE stream_id = ? AND "
                         "client_id = ? AND shard = ? AND refs > 0", (stream_id, client_id, int(shard)))
        if cur.rowcount == 0:
            return False          # never joined (or already cleared): not ours to announce
        db.execute("DELETE FROM media_presence WHERE stream_id = ? AND client_id = ? AND shard = ? "
                   "AND refs <= 0", (stream_id, client_id, int(shard)))
        left = db.execute("SELECT COALESCE(SUM(refs), 0) FROM media_presence WHERE stream_id = ? "
                          "AND client_id = ?", (stream_id, client_id)).fetchone()[0]
    return left == 0


def presence_reset(store: StateStore, shard: int, workers: int) -> int:
    """A worker (re)starting drops what its previous life held, and what shards beyond the
    node's worker count held (the node was restarted with fewer workers)."""
    with store.transaction() as db:
        n = db.execute("DELETE FROM media_presence WHERE shard = ? OR shard >= ?",
                       (int(shard), int(workers))).rowcount
    return n


def switch_index(store: StateStore, stream_id: str, old: int, new: int, *, count: bool,
                 when: float | None = None) -> tuple[bool, int]:
    """Compare-and-set the stream's current URL from ``old`` to ``new`` (counting a failover
    when ``count``).  Returns (won, stored index): only the worker that moved the index
    announces the switch; a worker that lost follows the stored index instead."""
    with store.transaction() as db:
        if count:
            cur = db.execute("UPDATE media_streams SET failover_index = ?, failover_attempts = "
                             "failover_attempts + 1, last_failover = ? WHERE id = ? AND "
                             "failover_index = ?", (int(new), when or time.time(), stream_id, int(old)))
        else:
            cur = db.execute("UPDATE media_streams SET failover_index = ? WHERE id = ? AND "
                             "failover_index = ?", (int(new), stream_id, int(old)))
        row = db.execute("SELECT failover_index FROM media_streams WHERE id = ?",
                         (stream_id,)).fetchone()
    return cur.rowcount == 1, (row[0] if row else int(new))


def switch_to_resolved(store: StateStore, stream_id: str, old: int, old_url: str, new_url: str, *,
                       when: float | None = None) -> tuple[bool, MediaStream | None]:
    """Compare-and-set the stream from URL ``old`` (which was ``old_url``) to the resolver's
    answer ``new_url``, counting a failover and an answer.  Returns (won, the stored stream):
    as with ``switch_index``, a worker that lost follows what the store holds."""
    with store.transaction() as db:
        row = db.execute(_SELECT_STREAM + " WHERE id = ?", (stream_id,)).fetchone()
        if row is None:
            return False, None
        stream = MediaStream.from_row(row)
        at = stream.failover_index if 0 <= stream.failover_index < len(stream.urls) else 0
        if at != old or stream.urls[at] != old_url:
            return False, stream
        stream.resolved_url = new_url
        stream.resolved_count += 1
        stream.failover_index = stream.resolved_index
        stream.failover_attempts += 1
        stream.last_failover = when or time.time()
        db.execute("UPDATE media_streams SET resolved_url = ?, resolved_count = ?, failover_index = ?, "
                   "failover_attempts = ?, last_failover = ? WHERE id = ?",
                   (new_url, stream.resolved_count, stream.failover_index, stream.failover_attempts,
                    stream.last_failover, stream_id))
    return True, stream


def claim_event(store: StateStore, stream_id: str, event: str, epoch: int) -> bool:
    """True for exactly one caller per (stream, event, epoch) on the node.  Older epochs of the
    same stream and event are dropped as the new one is claimed."""
    with store.transaction() as db:
        won = db.execute("INSERT OR IGNORE INTO media_claims (stream_id, event, epoch) VALUES (?, ?, ?)",
                         (stream_id, event, int(epoch))).rowcount == 1
        if won:
            db.execute("DELETE FROM media_claims WHERE stream_id = ? AND event = ? AND epoch < ?",
                       (stream_id, event, int(epoch)))
    return won
