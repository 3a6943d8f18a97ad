-- Spool's MySQL schema, version 7: tags and the completed history.
--
-- A job's tags (the dispatcher's labels) are kept comma-joined beside it, in the failed store
-- too (a retried job keeps them), and indexed one row per tag while it is queued. Tags are at
-- most 64 bytes, so 64 characters always hold one.
ALTER TABLE spool_jobs ADD COLUMN tags TEXT NULL;
ALTER TABLE spool_failed ADD COLUMN tags TEXT NULL;

CREATE TABLE IF NOT EXISTS spool_job_tags (
    tag    VARCHAR(64)  NOT NULL,
    job_id VARCHAR(255) NOT NULL,
    PRIMARY KEY (tag, job_id),
    -- Untagging a job that leaves the queue.
    KEY job_tags_job (job_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Every completed job's short record (never its payload; a result stays in spool_results),
-- newest first by (completed_at, id), pruned after the history retention. Written in the
-- completing transaction.
CREATE TABLE IF NOT EXISTS spool_completed (
    id           VARCHAR(255) NOT NULL,
    queue        VARCHAR(255) NOT NULL,
    job          VARCHAR(255) NOT NULL,
    batch_id     VARCHAR(255) NULL,
    tags         TEXT         NULL,
    attempts     BIGINT       NOT NULL,
    enqueued_at  BIGINT       NOT NULL,
    started_at   BIGINT       NULL,
    completed_at BIGINT       NOT NULL,
    PRIMARY KEY (id),
    KEY completed_at (completed_at, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The completed records by tag, newest first; a row whose record was replaced (the id
-- completed again) no longer matches its completion time and is skipped.
CREATE TABLE IF NOT EXISTS spool_completed_tags (
    tag          VARCHAR(64)  NOT NULL,
    completed_at BIGINT       NOT NULL,
    id           VARCHAR(255) NOT NULL,
    PRIMARY KEY (tag, completed_at, id),
    KEY completed_tags_at (completed_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
