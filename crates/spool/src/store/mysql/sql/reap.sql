SELECT j.seq, j.worker_id, j.token, j.recoveries, j.id, j.batch_id, j.unique_key, j.queue, j.job,
       j.tags IS NOT NULL AS tagged
FROM spool_jobs j
LEFT JOIN spool_workers w ON w.id = j.worker_id AND w.expires_at > {now}
WHERE j.worker_id IS NOT NULL AND w.id IS NULL
ORDER BY j.seq
