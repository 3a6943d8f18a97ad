DELETE FROM spool_job_tags WHERE job_id IN
    (SELECT id FROM spool_jobs WHERE queue = ?1 AND worker_id IS NULL AND tags IS NOT NULL)
