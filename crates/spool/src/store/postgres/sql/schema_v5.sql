-- Spool's PostgreSQL schema, version 5: measured job metrics. One row per cell: resolution
-- `res` (60 = minute, 3600 = hour, 0 = all time), period start `at` (ms), queue, job name,
-- series (a counter's name, `wait`/`run` histogram buckets, `wait_sum`/`run_sum` in
-- microseconds) and bucket; writers add to `n`. Minute rows are pruned after 48 hours, hour
-- rows after 30 days.
CREATE TABLE IF NOT EXISTS {schema}.metrics (
    res    INTEGER NOT NULL,
    at     BIGINT  NOT NULL,
    queue  TEXT    NOT NULL,
    job    TEXT    NOT NULL,
    series TEXT    NOT NULL,
    bucket BIGINT  NOT NULL,
    n      BIGINT  NOT NULL,
    PRIMARY KEY (res, at, queue, job, series, bucket)
);
