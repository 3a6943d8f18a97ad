WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms),
ended AS MATERIALIZED (
    SELECT e.batch_id, COUNT(*) AS n, COUNT(*) FILTER (WHERE e.failed) AS failures,
           COALESCE(array_agg(e.job_id ORDER BY e.ord) FILTER (WHERE e.failed), '{}')
               AS failed_ids
    FROM UNNEST($1::text[], $2::text[], $3::bool[]) WITH ORDINALITY
         AS e (batch_id, job_id, failed, ord)
    GROUP BY e.batch_id),
before AS MATERIALIZED (
    SELECT b.id, b.then_fired, b.catch_fired, b.finally_fired
    FROM {schema}.batches b
    WHERE b.id IN (SELECT batch_id FROM ended)
    ORDER BY b.id
    FOR UPDATE),
counted AS (
    UPDATE {schema}.batches b SET
        pending = GREATEST(b.pending - e.n, 0),
        failed = b.failed + e.failures,
        -- At most rules::MAX_FAILED_IDS ids are kept.
        failed_ids = CASE WHEN cardinality(b.failed_ids) >= 1000 THEN b.failed_ids
                          ELSE (b.failed_ids || e.failed_ids)[1:1000] END,
        cancelled_at = CASE WHEN e.failures > 0 AND NOT b.allow_failures
                            THEN COALESCE(b.cancelled_at, c.ms) ELSE b.cancelled_at END,
        finished_at = CASE WHEN b.pending - e.n <= 0
                           THEN COALESCE(b.finished_at, c.ms) ELSE b.finished_at END,
        catch_fired = b.catch_fired OR e.failures > 0,
        finally_fired = b.finally_fired OR b.pending - e.n <= 0,
        then_fired = b.then_fired OR (b.pending - e.n <= 0 AND b.failed + e.failures = 0)
    FROM ended e, before o, clock c
    WHERE b.id = e.batch_id AND o.id = b.id
    RETURNING b.catch_fired AND NOT o.catch_fired AS fire_catch, b.catch_job,
              b.finally_fired AND NOT o.finally_fired AS fire_finally, b.finally_job,
              b.then_fired AND NOT o.then_fired AS fire_then, b.then_job),
due AS (
    SELECT cb.job, cb.ord
    FROM counted,
         LATERAL (VALUES (1, fire_catch, catch_job), (2, fire_finally, finally_job),
                         (3, fire_then, then_job)) AS cb (ord, fire, job)
    WHERE cb.fire AND cb.job IS NOT NULL),
pushed AS (
    INSERT INTO {schema}.jobs (id, queue, job, envelope, available_at, retry_until,
                               created_at)
    SELECT d.job ->> 'id', d.job ->> 'queue', d.job ->> 'job', d.job ->> 'envelope',
           c.ms + (d.job ->> 'delay_ms')::bigint,
           c.ms + (d.job ->> 'retry_for_ms')::bigint, c.ms
    FROM due d, clock c
    ORDER BY d.ord
    ON CONFLICT (id) DO NOTHING
    RETURNING 1)
SELECT COUNT(*) FROM pushed
