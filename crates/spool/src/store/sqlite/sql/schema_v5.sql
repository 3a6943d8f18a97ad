-- Spool's SQLite schema, version 5: measured job metrics. One row per cell: resolution `res`
-- (60 = minute, 3600 = hour, 0 = all time), period start `at` (ms), queue, job name, series (a
-- counter's name, `wait`/`run` histogram buckets, `wait_sum`/`run_sum` in microseconds) and
-- bucket; writers add to `n`. Minute rows are pruned after 48 hours, hour rows after 30 days.
CREATE TABLE IF NOT EXISTS spool_metrics (
    res    INTEGER NOT NULL,
    at     INTEGER NOT NULL,
    queue  TEXT    NOT NULL,
    job    TEXT    NOT NULL,
    series TEXT    NOT NULL,
    bucket INTEGER NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (res, at, queue, job, series, bucket)
) WITHOUT ROWID;

-- The failed store by queue, newest first: per-queue listings and counts (the dashboard's)
-- read the index, not the records.
CREATE INDEX IF NOT EXISTS spool_failed_queue ON spool_failed (queue, failed_at);
