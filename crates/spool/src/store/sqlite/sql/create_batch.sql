INSERT INTO spool_batches (id, name, total, pending, allow_failures, then_job, catch_job,
                           finally_job, created_at)
VALUES (?1, ?2, 0, 0, ?3, ?4, ?5, ?6, ?7)
