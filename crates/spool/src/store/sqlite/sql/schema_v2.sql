-- Version 2: workflows (unique locks, batches, limiters, concurrency slots, progress, results).

ALTER TABLE spool_jobs ADD COLUMN batch_id TEXT;
ALTER TABLE spool_jobs ADD COLUMN unique_key TEXT;   -- the lock this job owns, if any
ALTER TABLE spool_jobs ADD COLUMN progress INTEGER;  -- 0..100, only when the handler reports it
ALTER TABLE spool_jobs ADD COLUMN progress_message TEXT;
ALTER TABLE spool_failed ADD COLUMN batch_id TEXT;

-- Unique-job locks: `owner` is the job id; only it releases the lock.
CREATE TABLE IF NOT EXISTS spool_locks (
    key        TEXT    PRIMARY KEY,
    owner      TEXT    NOT NULL,
    until      TEXT    NOT NULL,  -- done | processing | expiry
    expires_at INTEGER            -- ms since the epoch; NULL: until released
);
CREATE INDEX IF NOT EXISTS spool_locks_owner ON spool_locks (owner);

CREATE TABLE IF NOT EXISTS spool_batches (
    id             TEXT    PRIMARY KEY,
    name           TEXT    NOT NULL,
    total          INTEGER NOT NULL,
    pending        INTEGER NOT NULL,
    failed         INTEGER NOT NULL DEFAULT 0,
    failed_ids     TEXT    NOT NULL DEFAULT '[]',  -- JSON array
    allow_failures INTEGER NOT NULL,
    then_job       TEXT,   -- callbacks as JSON [id, queue, job, envelope], pushed once each
    catch_job      TEXT,
    finally_job    TEXT,
    then_fired     INTEGER NOT NULL DEFAULT 0,
    catch_fired    INTEGER NOT NULL DEFAULT 0,
    finally_fired  INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    cancelled_at   INTEGER,
    finished_at    INTEGER
);
CREATE INDEX IF NOT EXISTS spool_batches_created ON spool_batches (created_at);

-- Sliding-window limiters: one row per hit.
CREATE TABLE IF NOT EXISTS spool_limits (
    seq INTEGER PRIMARY KEY,
    key TEXT    NOT NULL,
    at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS spool_limits_key ON spool_limits (key, at);

-- Concurrency slots, held by reserved jobs under their worker's lease.
CREATE TABLE IF NOT EXISTS spool_slots (
    key        TEXT    NOT NULL,
    holder     TEXT    NOT NULL,  -- job id
    worker_id  TEXT    NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (key, holder)
);
CREATE INDEX IF NOT EXISTS spool_slots_holder ON spool_slots (holder);

-- Results of completed jobs that stored one, kept for the retention time.
CREATE TABLE IF NOT EXISTS spool_results (
    id           TEXT    PRIMARY KEY,
    queue        TEXT    NOT NULL,
    job          TEXT    NOT NULL,
    batch_id     TEXT,
    result       TEXT,
    completed_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS spool_results_at ON spool_results (completed_at);
