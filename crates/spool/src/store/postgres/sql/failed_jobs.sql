SELECT id, queue, job, envelope, error, causes, attempts, failed_at, tags
FROM {schema}.failed WHERE ($1::text IS NULL OR queue = $1)
ORDER BY failed_at DESC, id COLLATE "C" LIMIT $2
