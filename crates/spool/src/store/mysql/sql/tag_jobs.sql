INSERT INTO spool_job_tags (tag, job_id) VALUES {rows}
ON DUPLICATE KEY UPDATE job_id = job_id
