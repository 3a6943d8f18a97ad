INSERT INTO spool_metrics (res, at, queue, job, series, bucket, n)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
ON CONFLICT (res, at, queue, job, series, bucket) DO UPDATE SET n = n + excluded.n
