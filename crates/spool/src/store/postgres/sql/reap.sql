WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms),
lost AS MATERIALIZED (
    SELECT j.seq, j.worker_id, j.token FROM {schema}.jobs j
    WHERE j.worker_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM {schema}.workers w
                      WHERE w.id = j.worker_id AND w.expires_at > (SELECT ms FROM clock))),
poisoned AS (
    DELETE FROM {schema}.jobs j USING lost
    WHERE j.seq = lost.seq AND j.worker_id = lost.worker_id AND j.token = lost.token
      AND j.recoveries + 1 >= $1
    RETURNING j.id, j.queue, j.job, j.envelope, j.attempts, j.recoveries, j.last_error,
              j.batch_id, j.unique_key, j.tags),
recorded AS (
    INSERT INTO {schema}.failed (id, queue, job, envelope, error, causes, attempts, failed_at,
                                 batch_id, tags)
    SELECT id, queue, job, envelope,
           'worker lost ' || (recoveries + 1) || ' times while running this job',
           json_build_array(COALESCE(last_error, 'no error recorded before the losses'))::text,
           attempts, (SELECT ms FROM clock), batch_id, tags
    FROM poisoned
    ON CONFLICT (id) DO UPDATE SET error = excluded.error, causes = excluded.causes,
        attempts = excluded.attempts, failed_at = excluded.failed_at,
        batch_id = excluded.batch_id, tags = excluded.tags),
untagged AS (
    DELETE FROM {schema}.job_tags t USING poisoned p
    WHERE p.tags IS NOT NULL AND t.tag = ANY (string_to_array(p.tags, ','))
      AND t.job_id = p.id),
unlocked AS (
    DELETE FROM {schema}.locks l USING poisoned p
    WHERE p.unique_key IS NOT NULL AND l.key = p.unique_key AND l.owner = p.id
      AND l.until = 'done'),
expired_locks AS (
    -- Periodic jobs leave one expiring lock per tick.
    DELETE FROM {schema}.locks
    WHERE expires_at IS NOT NULL AND expires_at <= (SELECT ms FROM clock)),
freed AS (
    DELETE FROM {schema}.slots s
    WHERE NOT EXISTS (SELECT 1 FROM {schema}.workers w
                      WHERE w.id = s.worker_id AND w.expires_at > (SELECT ms FROM clock))),
recovered AS (
    UPDATE {schema}.jobs j
    SET worker_id = NULL, reserved_at = NULL, available_at = (SELECT ms FROM clock),
        attempts = j.attempts - 1, recoveries = j.recoveries + 1
    FROM lost
    WHERE j.seq = lost.seq AND j.worker_id = lost.worker_id AND j.token = lost.token
      AND j.recoveries + 1 < $1
    RETURNING j.queue, j.job),
counted AS (
    INSERT INTO {schema}.metrics (res, at, queue, job, series, bucket, n)
    SELECT r.res, CASE WHEN r.res = 0 THEN 0 ELSE c.ms - c.ms % (r.res * 1000) END,
           rec.queue, rec.job, 'rescued', 0, count(*)
    FROM recovered rec, clock c, (VALUES (0), (60), (3600)) AS r (res)
    GROUP BY 1, 2, 3, 4
    ORDER BY r.res, 2, rec.queue COLLATE "C", rec.job COLLATE "C"
    ON CONFLICT (res, at, queue, job, series, bucket) DO UPDATE SET n = metrics.n + excluded.n),
removed AS (
    DELETE FROM {schema}.workers WHERE expires_at <= (SELECT ms FROM clock) RETURNING 1)
SELECT (SELECT COUNT(*) FROM poisoned), (SELECT COUNT(*) FROM recovered),
       (SELECT COUNT(*) FROM removed),
       ARRAY(SELECT id FROM poisoned WHERE batch_id IS NOT NULL ORDER BY id),
       ARRAY(SELECT batch_id FROM poisoned WHERE batch_id IS NOT NULL ORDER BY id)
