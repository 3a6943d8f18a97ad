INSERT INTO {schema}.batches (id, name, total, pending, allow_failures, then_job,
                              catch_job, finally_job, created_at)
VALUES ($1, $2, 0, 0, $3, $4::jsonb, $5::jsonb, $6::jsonb, {schema}.now_ms())
