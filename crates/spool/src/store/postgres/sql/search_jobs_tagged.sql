-- Candidates: the queued jobs with a tag after an id, in id order, on the tag index. The tag
-- rows' ids compare bytewise ("C") and `jobs.id` in the database's collation: the join names
-- the latter, or no index on `jobs.id` serves it and every job is read (equality is the same
-- in both).
SELECT j.seq, j.available_at, t.job_id AS pos
FROM {schema}.job_tags t JOIN {schema}.jobs j ON j.id = t.job_id COLLATE "default"
WHERE t.tag = ? AND t.job_id > ?
ORDER BY t.job_id LIMIT ?
