SELECT id, name, total, pending, failed, failed_ids, allow_failures, created_at, cancelled_at, finished_at
FROM {schema}.batches WHERE $1::text IS NULL OR id = $1
ORDER BY created_at DESC, id COLLATE "C" LIMIT $2
