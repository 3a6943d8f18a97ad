INSERT INTO {schema}.metrics (res, at, queue, job, series, bucket, n)
SELECT * FROM UNNEST($1::integer[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                     $6::bigint[], $7::bigint[])
ON CONFLICT (res, at, queue, job, series, bucket) DO UPDATE SET n = metrics.n + excluded.n
