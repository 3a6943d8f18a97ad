INSERT INTO spool_batches (id, name, total, pending, failed_ids, allow_failures,
                           then_job, catch_job, finally_job, created_at)
VALUES (?, ?, 0, 0, '[]', ?, ?, ?, ?, {now})
