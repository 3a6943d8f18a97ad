INSERT INTO spool_jobs (id, queue, job, envelope, available_at, retry_until, created_at,
                        batch_id, unique_key, tags)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (id) DO NOTHING
