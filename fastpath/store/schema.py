"""Numbered migrations of the state store.  Append only: a migration, once released, is never
edited; the store applies every migration above its recorded ``user_version`` in order."""

MIGRATIONS: list[str] = [
    # 1: users and settings, which every face uses.
    """
    CREATE TABLE users (
        id            TEXT PRIMARY KEY,
        auth_secret   TEXT UNIQUE,
        enabled       INTEGER NOT NULL DEFAULT 1,
        traffic_limit INTEGER NOT NULL DEFAULT 0,
        expiry        REAL,
        inbounds      TEXT NOT NULL DEFAULT '[]',
        source        TEXT NOT NULL DEFAULT 'native',
        meta          TEXT NOT NULL DEFAULT '{}',
        created       REAL NOT NULL
    );
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: traffic accounting across segment lifetimes (keyed by the auth id, which need not be a
    # user of the table: the YAML auth backends name their own ids) and reader-side baselines.
    """
    CREATE TABLE carried (
        user_id TEXT PRIMARY KEY,
        tx      INTEGER NOT NULL,
        rx      INTEGER NOT NULL
    );
    CREATE TABLE segment_snapshots (
        segment_id INTEGER NOT NULL,
        user_id    TEXT NOT NULL,
        tx         INTEGER NOT NULL,
        rx         INTEGER NOT NULL,
        PRIMARY KEY (segment_id, user_id)
    );
    CREATE TABLE retired_segments (
        segment_id INTEGER PRIMARY KEY,
        retired_at REAL NOT NULL
    );
    CREATE TABLE baselines (
        scope   TEXT NOT NULL,
        user_id TEXT NOT NULL,
        tx      INTEGER NOT NULL,
        rx      INTEGER NOT NULL,
        PRIMARY KEY (scope, user_id)
    );
    """,
    # 3: the stream relay: registered streams (m3u-proxy style) and their webhooks.
    """
    CREATE TABLE media_streams (
        id                TEXT PRIMARY KEY,
        dedup_key         TEXT NOT NULL UNIQUE,
        url               TEXT NOT NULL,
        kind              TEXT NOT NULL,
        failover_urls     TEXT NOT NULL DEFAULT '[]',
        user_agent        TEXT,
        headers           TEXT NOT NULL DEFAULT '{}',
        strict_live_ts    INTEGER NOT NULL DEFAULT 0,
        sticky            INTEGER NOT NULL DEFAULT 0,
        metadata          TEXT NOT NULL DEFAULT '{}',
        profile           TEXT,
        profile_variables TEXT NOT NULL DEFAULT '{}',
        failover_index    INTEGER NOT NULL DEFAULT 0,
        failover_attempts INTEGER NOT NULL DEFAULT 0,
        last_failover     REAL,
        error_count       INTEGER NOT NULL DEFAULT 0,
        bytes_in          INTEGER NOT NULL DEFAULT 0,
        bytes_served      INTEGER NOT NULL DEFAULT 0,
        segments_served   INTEGER NOT NULL DEFAULT 0,
        created           REAL NOT NULL,
        last_access       REAL
    );
    CREATE TABLE media_webhooks (
        url            TEXT PRIMARY KEY,
        events         TEXT NOT NULL,
        headers        TEXT NOT NULL DEFAULT '{}',
        timeout        REAL NOT NULL DEFAULT 10,
        retry_attempts INTEGER NOT NULL DEFAULT 3,
        created        REAL NOT NULL
    );
    """,
    # 4: the stream relay's node-wide presence: which worker relays which stream and sees which
    # viewer, so stream and viewer events fire once per node, not once per worker.
    """
    CREATE TABLE media_presence (
        stream_id TEXT NOT NULL,
        client_id TEXT NOT NULL,
        shard     INTEGER NOT NULL,
        refs      INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (stream_id, client_id, shard)
    );
    CREATE TABLE media_claims (
        stream_id TEXT NOT NULL,
        event     TEXT NOT NULL,
        epoch     INTEGER NOT NULL,
        PRIMARY KEY (stream_id, event, epoch)
    );
    """,
    # 5: m3u-proxy's failover resolver: the URL the node asks for a stream's next upstream, the
    # last URL it answered (the stream's current URL while the index points past the list)
    # and how many answers were taken (m3u-proxy's ``current_failover_index`` on them).
    """
    ALTER TABLE media_streams ADD COLUMN failover_resolver_url TEXT;
    ALTER TABLE media_streams ADD COLUMN resolved_url TEXT;
    ALTER TABLE media_streams ADD COLUMN resolved_count INTEGER NOT NULL DEFAULT 0;
    """,
]
