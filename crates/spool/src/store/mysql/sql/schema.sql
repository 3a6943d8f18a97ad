-- Spool's MySQL / MariaDB schema, version 1. The tables live in the database the URL names,
-- prefixed `spool_` so they can sit next to an app's tables.
--
-- Every time is BIGINT milliseconds since the epoch, taken from the database clock (D-7), and
-- every counter is BIGINT so rows decode the same way as in the other stores. Text that is
-- compared or sorted uses utf8mb4_bin: exact, case-sensitive matches and code-point order (the
-- byte order of UTF-8), as in SQLite and PostgreSQL's "C" collation. There is no transactional
-- DDL here, so every statement is idempotent and a half-done migration is simply run again.

CREATE TABLE IF NOT EXISTS spool_jobs (
    seq          BIGINT       NOT NULL AUTO_INCREMENT, -- insertion order; breaks ties
    id           VARCHAR(255) NOT NULL,
    queue        VARCHAR(255) NOT NULL,
    job          VARCHAR(255) NOT NULL,
    envelope     LONGTEXT     NOT NULL,         -- immutable after dispatch, kept byte for byte
    available_at BIGINT       NOT NULL,
    worker_id    VARCHAR(255) NULL,             -- the holder while reserved, else NULL
    token        BIGINT       NOT NULL DEFAULT 0, -- fencing token, bumped on every reservation
    reserved_at  BIGINT       NULL,
    attempts     BIGINT       NOT NULL DEFAULT 0,
    recoveries   BIGINT       NOT NULL DEFAULT 0,
    deferrals    BIGINT       NOT NULL DEFAULT 0,
    exceptions   BIGINT       NOT NULL DEFAULT 0,
    retry_until  BIGINT       NULL,
    last_error   LONGTEXT     NULL,
    created_at   BIGINT       NOT NULL,
    PRIMARY KEY (seq),
    UNIQUE KEY jobs_id (id),
    -- Claiming: `queue = ? AND worker_id IS NULL AND available_at <= now ORDER BY available_at,
    -- seq` is one range of this index, read in order and cut off after N rows (InnoDB appends
    -- the primary key, seq, to every secondary index). There are no partial indexes here, so
    -- the holder is part of the key: reserved rows sit in other ranges and are never scanned.
    KEY jobs_ready (queue, worker_id, available_at),
    -- The reaper, deregistration and `stats` look jobs up by holder.
    KEY jobs_holder (worker_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS spool_failed (
    id        VARCHAR(255) NOT NULL,
    queue     VARCHAR(255) NOT NULL,
    job       VARCHAR(255) NOT NULL,
    envelope  LONGTEXT     NOT NULL,
    error     LONGTEXT     NOT NULL,
    causes    LONGTEXT     NOT NULL,             -- JSON array of strings, outermost first
    attempts  BIGINT       NOT NULL,
    failed_at BIGINT       NOT NULL,
    PRIMARY KEY (id),
    KEY failed_at (failed_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS spool_workers (
    id         VARCHAR(255) NOT NULL,
    host       VARCHAR(255) NOT NULL,
    pid        BIGINT       NOT NULL,
    queues     LONGTEXT     NOT NULL,            -- JSON array, in priority order
    started_at BIGINT       NOT NULL,
    expires_at BIGINT       NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Named counters, each split over slots so that concurrent transactions bumping the same
-- counter mostly update different rows (a worker always uses the slot its id hashes to); a
-- counter's value is the sum of its slots. `processed`: jobs completed. `changes`: events
-- other than pushes that make jobs available (releases, recoveries, run-now, retries), which
-- idle workers of other processes poll for. `restart_epoch` uses slot 0 only.
CREATE TABLE IF NOT EXISTS spool_meta (
    name  VARCHAR(64) NOT NULL,
    slot  INT         NOT NULL,
    value BIGINT      NOT NULL,
    PRIMARY KEY (name, slot)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
