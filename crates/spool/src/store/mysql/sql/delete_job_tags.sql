DELETE FROM spool_job_tags WHERE job_id = ?
