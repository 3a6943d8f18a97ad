WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms),
done AS (
    DELETE FROM {schema}.jobs j
    USING json_to_recordset($1::json) AS d (id text, token bigint, result text)
    WHERE j.id = d.id AND j.worker_id = $2 AND j.token = d.token
    RETURNING j.id, j.token, j.queue, j.job, j.batch_id, j.unique_key, j.tags, j.attempts,
              j.created_at, j.reserved_at, d.result),
counted AS (
    INSERT INTO {schema}.meta (name, value)
    SELECT 'processed', COUNT(*) FROM done HAVING COUNT(*) > 0
    ON CONFLICT (name) DO UPDATE SET value = meta.value + excluded.value),
history AS (
    INSERT INTO {schema}.completed (id, queue, job, batch_id, tags, attempts, enqueued_at,
                                    started_at, completed_at)
    SELECT id, queue, job, batch_id, tags, attempts, created_at, reserved_at,
           (SELECT ms FROM clock)
    FROM done
    ON CONFLICT (id) DO UPDATE SET queue = excluded.queue, job = excluded.job,
        batch_id = excluded.batch_id, tags = excluded.tags, attempts = excluded.attempts,
        enqueued_at = excluded.enqueued_at, started_at = excluded.started_at,
        completed_at = excluded.completed_at),
history_tags AS (
    INSERT INTO {schema}.completed_tags (tag, completed_at, id)
    SELECT t.tag, (SELECT ms FROM clock), done.id
    FROM done, unnest(string_to_array(done.tags, ',')) AS t (tag)
    WHERE done.tags IS NOT NULL
    ON CONFLICT DO NOTHING),
untagged AS (
    DELETE FROM {schema}.job_tags t USING done
    WHERE done.tags IS NOT NULL AND t.tag = ANY (string_to_array(done.tags, ','))
      AND t.job_id = done.id),
kept AS (
    INSERT INTO {schema}.results (id, queue, job, batch_id, result, completed_at)
    SELECT id, queue, job, batch_id, result, (SELECT ms FROM clock)
    FROM done WHERE result IS NOT NULL
    ON CONFLICT (id) DO UPDATE SET result = excluded.result,
        completed_at = excluded.completed_at),
unlocked AS (
    DELETE FROM {schema}.locks l USING done s
    WHERE s.unique_key IS NOT NULL AND l.key = s.unique_key AND l.owner = s.id
      AND l.until = 'done'),
freed AS (DELETE FROM {schema}.slots s USING done x WHERE s.holder = x.id)
SELECT id, token, batch_id FROM done
