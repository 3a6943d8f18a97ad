-- Spool's SQLite schema, version 1. Every table is prefixed `spool_` so Spool can live in an
-- app's own database file without clashing with its tables.

CREATE TABLE IF NOT EXISTS spool_jobs (
    seq          INTEGER PRIMARY KEY,      -- insertion order; ties in available_at break on it
    id           TEXT    NOT NULL UNIQUE,
    queue        TEXT    NOT NULL,
    job          TEXT    NOT NULL,
    envelope     TEXT    NOT NULL,         -- immutable after dispatch
    available_at INTEGER NOT NULL,         -- ms since the epoch
    worker_id    TEXT,                     -- the holder while reserved, else NULL
    token        INTEGER NOT NULL DEFAULT 0, -- fencing token, bumped on every reservation
    reserved_at  INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 0,
    recoveries   INTEGER NOT NULL DEFAULT 0,
    deferrals    INTEGER NOT NULL DEFAULT 0,
    exceptions   INTEGER NOT NULL DEFAULT 0,
    retry_until  INTEGER,
    last_error   TEXT,
    created_at   INTEGER NOT NULL
);

-- Claiming walks this index in order and stops after N rows: its cost does not grow with the
-- backlog. Reserved rows leave the index.
CREATE INDEX IF NOT EXISTS spool_jobs_ready
    ON spool_jobs (queue, available_at, seq) WHERE worker_id IS NULL;

CREATE INDEX IF NOT EXISTS spool_jobs_holder
    ON spool_jobs (worker_id) WHERE worker_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS spool_failed (
    id        TEXT    PRIMARY KEY,
    queue     TEXT    NOT NULL,
    job       TEXT    NOT NULL,
    envelope  TEXT    NOT NULL,
    error     TEXT    NOT NULL,
    causes    TEXT    NOT NULL DEFAULT '[]',  -- JSON array of strings
    attempts  INTEGER NOT NULL,
    failed_at INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS spool_failed_at ON spool_failed (failed_at);

CREATE TABLE IF NOT EXISTS spool_workers (
    id         TEXT    PRIMARY KEY,
    host       TEXT    NOT NULL,
    pid        INTEGER NOT NULL,
    queues     TEXT    NOT NULL,           -- JSON array
    started_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

-- Small named integers: the processed counter and the restart epoch.
CREATE TABLE IF NOT EXISTS spool_meta (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
);
