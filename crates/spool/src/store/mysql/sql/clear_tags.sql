DELETE t FROM spool_job_tags t
JOIN spool_jobs j ON j.id = t.job_id
WHERE j.queue = ? AND j.worker_id IS NULL AND j.tags IS NOT NULL
