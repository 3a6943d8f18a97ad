WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms),
done AS (
    DELETE FROM {schema}.jobs j
    USING json_to_recordset($1::json) AS d (id text, token bigint, result text)
    WHERE j.id = d.id AND j.worker_id = $2 AND j.token = d.token
    RETURNING j.id, j.token, j.queue, j.job, j.batch_id, j.unique_key, d.result),
counted AS (
    INSERT INTO {schema}.meta (name, value)
    SELECT 'processed', COUNT(*) FROM done HAVING COUNT(*) > 0
    ON CONFLICT (name) DO UPDATE SET value = meta.value + excluded.value),
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
