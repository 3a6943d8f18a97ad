-- Spool's PostgreSQL schema, version 2: workflows (unique locks, batches, limiters, concurrency
-- slots, progress, kept results). Applied after version 1, under the same migration lock.
--
-- The new job columns are nullable without a default, so adding them only changes the
-- catalogue: the ACCESS EXCLUSIVE lock ALTER TABLE takes on a live queue is held for moments,
-- not for a rewrite of the table.

ALTER TABLE {schema}.jobs ADD COLUMN IF NOT EXISTS batch_id TEXT;
ALTER TABLE {schema}.jobs ADD COLUMN IF NOT EXISTS unique_key TEXT;        -- the lock it owns
ALTER TABLE {schema}.jobs ADD COLUMN IF NOT EXISTS progress BIGINT;        -- 0..100, once reported
ALTER TABLE {schema}.jobs ADD COLUMN IF NOT EXISTS progress_message TEXT;
ALTER TABLE {schema}.failed ADD COLUMN IF NOT EXISTS batch_id TEXT;

-- `retry_failed` by batch.
CREATE INDEX IF NOT EXISTS failed_batch
    ON {schema}.failed (batch_id) WHERE batch_id IS NOT NULL;

-- Unique-job locks. `owner` is the id of the job that took the lock; only that job's settlement
-- (or its deletion by an operator) releases it.
CREATE TABLE IF NOT EXISTS {schema}.locks (
    key        TEXT   PRIMARY KEY,
    owner      TEXT   NOT NULL,
    until      TEXT   NOT NULL CHECK (until IN ('done', 'processing', 'expiry')),
    expires_at BIGINT                       -- NULL: held until released
);

-- Releasing by owner (operator deletes).
CREATE INDEX IF NOT EXISTS locks_owner ON {schema}.locks (owner);

CREATE TABLE IF NOT EXISTS {schema}.batches (
    id             TEXT    PRIMARY KEY,
    name           TEXT    NOT NULL,
    total          BIGINT  NOT NULL,
    pending        BIGINT  NOT NULL,
    failed         BIGINT  NOT NULL DEFAULT 0,
    failed_ids     TEXT[]  NOT NULL DEFAULT '{}',
    allow_failures BOOLEAN NOT NULL,
    -- Callbacks as JSON objects {id, queue, job, envelope, delay_ms, retry_for_ms}, pushed once
    -- each; the *_fired flags say which were.
    then_job       JSONB,
    catch_job      JSONB,
    finally_job    JSONB,
    then_fired     BOOLEAN NOT NULL DEFAULT false,
    catch_fired    BOOLEAN NOT NULL DEFAULT false,
    finally_fired  BOOLEAN NOT NULL DEFAULT false,
    created_at     BIGINT  NOT NULL,
    cancelled_at   BIGINT,
    finished_at    BIGINT
);

-- Listing newest first and pruning by age.
CREATE INDEX IF NOT EXISTS batches_created ON {schema}.batches (created_at);

-- Sliding-window limiters: one row per hit.
CREATE TABLE IF NOT EXISTS {schema}.limits (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key TEXT   NOT NULL,
    at  BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS limits_key ON {schema}.limits (key, at);

-- Concurrency slots, held by reserved jobs under their worker's lease.
CREATE TABLE IF NOT EXISTS {schema}.slots (
    key        TEXT   NOT NULL,
    holder     TEXT   NOT NULL,             -- job id
    worker_id  TEXT   NOT NULL,
    expires_at BIGINT,                      -- NULL: held until the job is settled
    PRIMARY KEY (key, holder)
);

-- Every settlement frees its job's slots by holder.
CREATE INDEX IF NOT EXISTS slots_holder ON {schema}.slots (holder);

-- Results of completed jobs that stored one, kept for the retention time.
CREATE TABLE IF NOT EXISTS {schema}.results (
    id           TEXT   PRIMARY KEY,
    queue        TEXT   NOT NULL,
    job          TEXT   NOT NULL,
    batch_id     TEXT,
    result       TEXT,                      -- JSON, as the handler stored it
    completed_at BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS results_at ON {schema}.results (completed_at);
