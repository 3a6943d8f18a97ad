-- Spool's PostgreSQL schema, version 1. `{schema}` is replaced by the quoted schema name
-- before this runs: Spool keeps its tables in a schema of their own (default `spool`), so it can
-- share an app's database without clashing with its tables.
--
-- Every time is BIGINT milliseconds since the epoch, taken from the database clock (D-7), and
-- every counter is BIGINT so rows decode the same way as in the SQLite store.

-- The one clock every statement uses. clock_timestamp(), not now(): a long transaction must not
-- see time stand still.
CREATE OR REPLACE FUNCTION {schema}.now_ms() RETURNS bigint
    LANGUAGE sql VOLATILE
    AS $$ SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint $$;

-- The retry window frozen into an envelope (`options.retry_for_ms`), or NULL when there is none.
-- Envelopes are stored as the exact text pushed and may be malformed (the worker reports
-- that when it runs the job), so a bad one yields NULL instead of failing a whole retry batch.
CREATE OR REPLACE FUNCTION {schema}.retry_window_ms(envelope text) RETURNS bigint
    LANGUAGE plpgsql IMMUTABLE
    AS $$
BEGIN
    RETURN (envelope::jsonb -> 'options' ->> 'retry_for_ms')::bigint;
EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
    RETURN NULL;
END
$$;

CREATE TABLE IF NOT EXISTS {schema}.jobs (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- insertion order; breaks ties
    id           TEXT   NOT NULL UNIQUE,
    queue        TEXT   NOT NULL,
    job          TEXT   NOT NULL,
    envelope     TEXT   NOT NULL,            -- immutable after dispatch, kept byte for byte
    available_at BIGINT NOT NULL,
    worker_id    TEXT,                       -- the holder while reserved, else NULL
    token        BIGINT NOT NULL DEFAULT 0,  -- fencing token, bumped on every reservation
    reserved_at  BIGINT,
    attempts     BIGINT NOT NULL DEFAULT 0,
    recoveries   BIGINT NOT NULL DEFAULT 0,
    deferrals    BIGINT NOT NULL DEFAULT 0,
    exceptions   BIGINT NOT NULL DEFAULT 0,
    retry_until  BIGINT,
    last_error   TEXT,
    created_at   BIGINT NOT NULL
);

-- Claiming walks this index in order and stops after N rows, so its cost does not grow with
-- the backlog; reserved rows leave the index, so SKIP LOCKED has few held rows to step over.
CREATE INDEX IF NOT EXISTS jobs_ready
    ON {schema}.jobs (queue, available_at, seq) WHERE worker_id IS NULL;

-- The reaper, deregistration and `stats` look jobs up by holder.
CREATE INDEX IF NOT EXISTS jobs_holder
    ON {schema}.jobs (worker_id) WHERE worker_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS {schema}.failed (
    id        TEXT   PRIMARY KEY,
    queue     TEXT   NOT NULL,
    job       TEXT   NOT NULL,
    envelope  TEXT   NOT NULL,
    error     TEXT   NOT NULL,
    causes    TEXT   NOT NULL DEFAULT '[]',  -- JSON array of strings, outermost first
    attempts  BIGINT NOT NULL,
    failed_at BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS failed_at ON {schema}.failed (failed_at);

CREATE TABLE IF NOT EXISTS {schema}.workers (
    id         TEXT   PRIMARY KEY,
    host       TEXT   NOT NULL,
    pid        BIGINT NOT NULL,
    queues     TEXT[] NOT NULL,              -- in priority order
    started_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Small named integers: the processed counter and the restart epoch.
CREATE TABLE IF NOT EXISTS {schema}.meta (
    name  TEXT   PRIMARY KEY,
    value BIGINT NOT NULL
);
