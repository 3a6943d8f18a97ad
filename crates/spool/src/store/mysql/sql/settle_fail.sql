REPLACE INTO spool_failed (id, queue, job, envelope, error, causes, attempts, failed_at, batch_id,
                           tags)
SELECT j.id, j.queue, j.job, j.envelope, d.error, d.causes, j.attempts, {now}, j.batch_id, j.tags
FROM spool_jobs j
JOIN (SELECT ? AS seq, CAST(? AS CHAR) AS error, CAST(? AS CHAR) AS causes{more}) d
  ON j.seq = d.seq
