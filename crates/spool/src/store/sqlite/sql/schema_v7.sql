-- Spool's SQLite schema, version 7: tags and the completed history.
--
-- A job's tags (the dispatcher's labels) are kept comma-joined beside it, in the failed store
-- too (a retried job keeps them), and indexed one row per tag while it is queued.
ALTER TABLE spool_jobs ADD COLUMN tags TEXT;
ALTER TABLE spool_failed ADD COLUMN tags TEXT;

CREATE TABLE IF NOT EXISTS spool_job_tags (
    tag    TEXT NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (tag, job_id)
) WITHOUT ROWID;
-- Untagging a job that leaves the queue.
CREATE INDEX IF NOT EXISTS spool_job_tags_job ON spool_job_tags (job_id);

-- Every completed job's short record (never its payload; a result stays in spool_results),
-- newest first by (completed_at, id), pruned after the history retention. Written in the
-- completing transaction.
CREATE TABLE IF NOT EXISTS spool_completed (
    id           TEXT    NOT NULL PRIMARY KEY,
    queue        TEXT    NOT NULL,
    job          TEXT    NOT NULL,
    batch_id     TEXT,
    tags         TEXT,
    attempts     INTEGER NOT NULL,
    enqueued_at  INTEGER NOT NULL,
    started_at   INTEGER,
    completed_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS spool_completed_at ON spool_completed (completed_at, id);

-- The completed records by tag, newest first; a row whose record was replaced (the id
-- completed again) no longer matches its completion time and is skipped.
CREATE TABLE IF NOT EXISTS spool_completed_tags (
    tag          TEXT    NOT NULL,
    completed_at INTEGER NOT NULL,
    id           TEXT    NOT NULL,
    PRIMARY KEY (tag, completed_at, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS spool_completed_tags_at ON spool_completed_tags (completed_at);
