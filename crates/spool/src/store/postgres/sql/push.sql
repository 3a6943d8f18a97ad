WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms),
n AS MATERIALIZED (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[],
                         $6::bigint[], $7::text[], $8::text[], $9::text[], $10::bigint[],
                         $12::text[])
         WITH ORDINALITY AS n (id, queue, job, envelope, delay_ms, retry_for_ms,
                               batch_id, unique_key, until, ttl_ms, tags, ord)),
locked AS (
    INSERT INTO {schema}.locks (key, owner, until, expires_at)
    SELECT DISTINCT ON (n.unique_key) n.unique_key, n.id, n.until, c.ms + n.ttl_ms
    FROM n, clock c
    WHERE n.unique_key IS NOT NULL
    ORDER BY n.unique_key, n.ord
    ON CONFLICT (key) DO UPDATE
        SET owner = excluded.owner, until = excluded.until,
            expires_at = excluded.expires_at
        WHERE locks.expires_at IS NOT NULL
          AND locks.expires_at <= (SELECT ms FROM clock)
    RETURNING key, owner),
ins AS (
    INSERT INTO {schema}.jobs (id, queue, job, envelope, available_at, retry_until,
                               created_at, batch_id, unique_key, tags)
    SELECT n.id, n.queue, n.job, n.envelope, c.ms + n.delay_ms, c.ms + n.retry_for_ms,
           c.ms, n.batch_id, n.unique_key, n.tags
    FROM n, clock c
    WHERE n.unique_key IS NULL
       OR EXISTS (SELECT 1 FROM locked l WHERE l.key = n.unique_key AND l.owner = n.id)
    ORDER BY n.ord
    ON CONFLICT (id) DO NOTHING
    RETURNING id, queue, job, tags),
tagged AS (
    -- The tag index, for the jobs stored now (a repeated id stored nothing).
    INSERT INTO {schema}.job_tags (tag, job_id)
    SELECT t.tag, ins.id FROM ins, unnest(string_to_array(ins.tags, ',')) AS t (tag)
    WHERE ins.tags IS NOT NULL
    ON CONFLICT DO NOTHING),
counted AS (
    INSERT INTO {schema}.metrics (res, at, queue, job, series, bucket, n)
    SELECT r.res, CASE WHEN r.res = 0 THEN 0 ELSE c.ms - c.ms % (r.res * 1000) END,
           ins.queue, ins.job, 'enqueued', 0, count(*)
    FROM ins, clock c, (VALUES (0), (60), (3600)) AS r (res)
    GROUP BY 1, 2, 3, 4
    ORDER BY r.res, 2, ins.queue COLLATE "C", ins.job COLLATE "C"
    ON CONFLICT (res, at, queue, job, series, bucket) DO UPDATE SET n = metrics.n + excluded.n),
notified AS MATERIALIZED (
    SELECT pg_notify($11, '') FROM (SELECT 1 FROM ins LIMIT 1) AS any_inserted)
SELECT ins.id FROM ins LEFT JOIN notified ON true
