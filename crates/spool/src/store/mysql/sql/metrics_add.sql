INSERT INTO spool_metrics (res, at, queue, job, series, bucket, n)
VALUES (?, ?, ?, ?, ?, ?, ?)
