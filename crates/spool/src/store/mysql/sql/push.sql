INSERT INTO spool_jobs (id, queue, job, envelope, available_at, retry_until, created_at,
                        batch_id, unique_key, tags)
VALUES (?, ?, ?, ?, {now} + ?, {now} + ?, {now}, ?, ?, ?)
