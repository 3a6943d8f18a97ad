WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms),
requeued AS (
    INSERT INTO {schema}.jobs (id, queue, job, envelope, available_at, retry_until,
                               created_at, batch_id, tags)
    SELECT f.id, f.queue, f.job, f.envelope, c.ms,
           -- No window, no deadline (LEAST alone would turn NULL into the cap).
           CASE WHEN w.ms IS NOT NULL THEN c.ms + LEAST(w.ms, $4) END,
           c.ms, f.batch_id, f.tags
    FROM {schema}.failed f, clock c,
         LATERAL (SELECT {schema}.retry_window_ms(f.envelope) AS ms) w
    WHERE ($1 AND ($2::text IS NULL OR f.queue = $2)) OR (NOT $1 AND f.id = ANY($3))
       OR ($5::text IS NOT NULL AND f.batch_id = $5)
    ORDER BY f.failed_at, f.id COLLATE "C"
    ON CONFLICT (id) DO NOTHING
    RETURNING id, batch_id, tags),
tagged AS (
    INSERT INTO {schema}.job_tags (tag, job_id)
    SELECT t.tag, requeued.id
    FROM requeued, unnest(string_to_array(requeued.tags, ',')) AS t (tag)
    WHERE requeued.tags IS NOT NULL
    ON CONFLICT DO NOTHING),
forgotten AS (
    DELETE FROM {schema}.failed WHERE id IN (SELECT id FROM requeued)),
uncounted AS (
    UPDATE {schema}.batches b
    SET pending = b.pending + r.n, failed = GREATEST(b.failed - r.n, 0),
        failed_ids = ARRAY(SELECT x.id FROM unnest(b.failed_ids) WITH ORDINALITY AS x (id, ord)
                           WHERE x.id <> ALL (r.ids) ORDER BY x.ord),
        cancelled_at = NULL, finished_at = NULL
    FROM (SELECT batch_id, COUNT(*) AS n, array_agg(id) AS ids FROM requeued
          WHERE batch_id IS NOT NULL GROUP BY batch_id) r
    WHERE b.id = r.batch_id)
SELECT id FROM requeued
