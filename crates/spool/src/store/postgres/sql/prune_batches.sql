WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms)
DELETE FROM {schema}.batches b USING clock c
WHERE ($1::bigint IS NOT NULL AND b.finished_at IS NOT NULL AND b.finished_at < c.ms - $1)
   OR ($2::bigint IS NOT NULL AND b.finished_at IS NULL AND b.created_at < c.ms - $2)
   OR ($3::bigint IS NOT NULL AND b.cancelled_at IS NOT NULL AND b.created_at < c.ms - $3)
