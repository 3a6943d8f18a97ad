WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms),
gone AS (
    DELETE FROM {schema}.jobs j
    USING json_to_recordset($1::json) AS d (id text, token bigint, error text, causes text)
    WHERE j.id = d.id AND j.worker_id = $2 AND j.token = d.token
    RETURNING j.id, j.token, j.queue, j.job, j.envelope, j.attempts, j.batch_id,
              j.unique_key, j.tags, d.error, d.causes),
recorded AS (
    INSERT INTO {schema}.failed (id, queue, job, envelope, error, causes, attempts,
                                 failed_at, batch_id, tags)
    SELECT id, queue, job, envelope, error, causes, attempts, (SELECT ms FROM clock),
           batch_id, tags
    FROM gone
    ON CONFLICT (id) DO UPDATE SET queue = excluded.queue, job = excluded.job,
        envelope = excluded.envelope, error = excluded.error,
        causes = excluded.causes, attempts = excluded.attempts,
        failed_at = excluded.failed_at, batch_id = excluded.batch_id, tags = excluded.tags),
untagged AS (
    DELETE FROM {schema}.job_tags t USING gone
    WHERE gone.tags IS NOT NULL AND t.tag = ANY (string_to_array(gone.tags, ','))
      AND t.job_id = gone.id),
unlocked AS (
    DELETE FROM {schema}.locks l USING gone s
    WHERE s.unique_key IS NOT NULL AND l.key = s.unique_key AND l.owner = s.id
      AND l.until = 'done'),
freed AS (DELETE FROM {schema}.slots s USING gone x WHERE s.holder = x.id)
SELECT id, token, batch_id FROM gone
