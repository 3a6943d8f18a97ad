SELECT id, queue, job, worker_id, available_at, attempts, recoveries, deferrals, last_error, envelope, progress, progress_message, {schema}.now_ms(), reserved_at, tags
FROM {schema}.jobs WHERE id = $1
