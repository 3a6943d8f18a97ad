SELECT at, queue, job, series, bucket, n
FROM {schema}.metrics
WHERE res = $1 AND at >= $2 AND ($3::text IS NULL OR queue = $3)
