SELECT id, queue, job, envelope, error, causes, attempts, failed_at, tags
FROM {schema}.failed WHERE id = $1
