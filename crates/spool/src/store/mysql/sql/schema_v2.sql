-- Spool's MySQL / MariaDB schema, version 2: workflows (unique locks, batches, limiters,
-- concurrency slots, progress, kept results). Applied after version 1, under the same
-- migration lock.
--
-- MariaDB has `ADD COLUMN IF NOT EXISTS` but MySQL 8 does not, so the migration runs every
-- statement and skips one that finds its column or index already there (errors 1060 and 1061):
-- a half-done migration is simply run again, on either server. The new job columns are
-- nullable without a default, so both servers add them in place (no table rewrite).
--
-- `key` and `until` are reserved words here, so the lock, limiter and slot keys are `name` and
-- a lock's release point is `held_until`.

ALTER TABLE spool_jobs ADD COLUMN batch_id VARCHAR(255) NULL;
ALTER TABLE spool_jobs ADD COLUMN unique_key VARCHAR(512) NULL;       -- the lock it owns
ALTER TABLE spool_jobs ADD COLUMN progress BIGINT NULL;               -- 0..100, once reported
ALTER TABLE spool_jobs ADD COLUMN progress_message LONGTEXT NULL;
-- Set when the job took a concurrency slot: its settlement must free slots. The worker's fast
-- settle path only takes jobs with no batch, no lock and no slot (see `settle`).
ALTER TABLE spool_jobs ADD COLUMN took_slot BIGINT NULL;
ALTER TABLE spool_failed ADD COLUMN batch_id VARCHAR(255) NULL;

-- `retry_failed` by batch.
CREATE INDEX failed_batch ON spool_failed (batch_id);

-- Unique-job locks. `owner` is the id of the job that took the lock; only that job's
-- settlement (or its deletion by an operator) releases it.
CREATE TABLE IF NOT EXISTS spool_locks (
    name       VARCHAR(512) NOT NULL,
    owner      VARCHAR(255) NOT NULL,
    held_until VARCHAR(16)  NOT NULL,          -- done | processing | expiry
    expires_at BIGINT       NULL,              -- NULL: held until released
    PRIMARY KEY (name),
    -- Releasing by owner (operator deletes).
    KEY locks_owner (owner),
    -- The reaper drops expired locks (periodic jobs leave one per tick).
    KEY locks_expiry (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS spool_batches (
    id             VARCHAR(255) NOT NULL,
    name           LONGTEXT     NOT NULL,
    total          BIGINT       NOT NULL,
    pending        BIGINT       NOT NULL,
    failed         BIGINT       NOT NULL DEFAULT 0,
    failed_ids     LONGTEXT     NOT NULL,      -- JSON array of job ids, in failure order
    allow_failures BOOLEAN      NOT NULL,
    -- Callbacks as JSON objects {id, queue, job, envelope, delay_ms, retry_for_ms}, pushed
    -- once each; the *_fired flags say which were.
    then_job       LONGTEXT     NULL,
    catch_job      LONGTEXT     NULL,
    finally_job    LONGTEXT     NULL,
    then_fired     BOOLEAN      NOT NULL DEFAULT FALSE,
    catch_fired    BOOLEAN      NOT NULL DEFAULT FALSE,
    finally_fired  BOOLEAN      NOT NULL DEFAULT FALSE,
    created_at     BIGINT       NOT NULL,
    cancelled_at   BIGINT       NULL,
    finished_at    BIGINT       NULL,
    PRIMARY KEY (id),
    -- Listing newest first and pruning by age.
    KEY batches_created (created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Sliding-window limiters: one row per hit.
CREATE TABLE IF NOT EXISTS spool_limits (
    seq  BIGINT       NOT NULL AUTO_INCREMENT,
    name VARCHAR(512) NOT NULL,
    at   BIGINT       NOT NULL,
    PRIMARY KEY (seq),
    KEY limits_name (name, at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Concurrency slots, held by reserved jobs under their worker's lease.
CREATE TABLE IF NOT EXISTS spool_slots (
    name       VARCHAR(512) NOT NULL,
    holder     VARCHAR(255) NOT NULL,          -- job id
    worker_id  VARCHAR(255) NOT NULL,
    expires_at BIGINT       NULL,              -- NULL: held until the job is settled
    PRIMARY KEY (name, holder),
    -- Every settlement of a job that took a slot frees its slots by holder.
    KEY slots_holder (holder)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row per limiter and slot key ever used: the row a call locks (`FOR UPDATE`) to run alone
-- among the callers of its key (see `workflow::lock_key`). `kind` is `limit` or `slot`.
CREATE TABLE IF NOT EXISTS spool_keys (
    kind    VARCHAR(8)   NOT NULL,
    name    VARCHAR(512) NOT NULL,
    used_at BIGINT       NOT NULL,
    PRIMARY KEY (kind, name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Results of completed jobs that stored one, kept for the retention time.
CREATE TABLE IF NOT EXISTS spool_results (
    id           VARCHAR(255) NOT NULL,
    queue        VARCHAR(255) NOT NULL,
    job          VARCHAR(255) NOT NULL,
    batch_id     VARCHAR(255) NULL,
    result       LONGTEXT     NULL,            -- JSON, as the handler stored it
    completed_at BIGINT       NOT NULL,
    PRIMARY KEY (id),
    KEY results_at (completed_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
