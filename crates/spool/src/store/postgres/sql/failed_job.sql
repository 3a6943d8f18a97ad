SELECT id, queue, job, envelope, error, causes, attempts, failed_at
FROM {schema}.failed WHERE id = $1
