WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms)
SELECT id, queue, job, worker_id, available_at, attempts, recoveries, deferrals, last_error, envelope, progress, progress_message, clock.ms, reserved_at, tags
FROM {schema}.jobs, clock WHERE true
