-- Candidates: the queued jobs with a tag after an id, in id order, on the tag index.
SELECT j.seq, j.available_at, t.job_id AS pos
FROM spool_job_tags t JOIN spool_jobs j ON j.id = t.job_id
WHERE t.tag = ? AND t.job_id > ?
ORDER BY t.job_id LIMIT ?
