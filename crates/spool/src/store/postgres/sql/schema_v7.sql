-- Spool's PostgreSQL schema, version 7: tags and the completed history.
--
-- A job's tags (the dispatcher's labels) are kept comma-joined beside it, in the failed store
-- too (a retried job keeps them), and indexed one row per tag while it is queued. The new
-- columns are nullable without a default: adding them only changes the catalogue. Ids in the
-- new tables compare bytewise ("C"), so their order is the same on every server.
ALTER TABLE {schema}.jobs ADD COLUMN IF NOT EXISTS tags TEXT;
ALTER TABLE {schema}.failed ADD COLUMN IF NOT EXISTS tags TEXT;

CREATE TABLE IF NOT EXISTS {schema}.job_tags (
    tag    TEXT NOT NULL,
    job_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tag, job_id)
);

-- Every completed job's short record (never its payload; a result stays in `results`),
-- newest first by (completed_at, id), pruned after the history retention. Written by the
-- completing statement.
CREATE TABLE IF NOT EXISTS {schema}.completed (
    id           TEXT COLLATE "C" PRIMARY KEY,
    queue        TEXT   NOT NULL,
    job          TEXT   NOT NULL,
    batch_id     TEXT,
    tags         TEXT,
    attempts     BIGINT NOT NULL,
    enqueued_at  BIGINT NOT NULL,
    started_at   BIGINT,
    completed_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS completed_at ON {schema}.completed (completed_at, id);

-- The completed records by tag, newest first; a row whose record was replaced (the id
-- completed again) no longer matches its completion time and is skipped.
CREATE TABLE IF NOT EXISTS {schema}.completed_tags (
    tag          TEXT   NOT NULL,
    completed_at BIGINT NOT NULL,
    id           TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tag, completed_at, id)
);
CREATE INDEX IF NOT EXISTS completed_tags_at ON {schema}.completed_tags (completed_at);
