-- Candidates: the queued jobs with a tag after an id, in id order, on the tag index.
SELECT j.seq, j.available_at, t.job_id AS pos
FROM {schema}.job_tags t JOIN {schema}.jobs j ON j.id = t.job_id
WHERE t.tag = ? AND t.job_id > ?
ORDER BY t.job_id LIMIT ?
