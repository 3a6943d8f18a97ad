WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms),
settled AS MATERIALIZED (
    SELECT * FROM json_to_recordset($1::json) AS d (id text, token bigint)),
in_batch AS MATERIALIZED (
    SELECT EXISTS (
        SELECT 1 FROM {schema}.jobs j JOIN settled d ON j.id = d.id
        WHERE j.worker_id = $2 AND j.token = d.token AND j.batch_id IS NOT NULL)
    AS found),
done AS (
    DELETE FROM {schema}.jobs j USING settled d
    WHERE j.id = d.id AND j.worker_id = $2 AND j.token = d.token
      AND j.batch_id IS NULL AND NOT (SELECT found FROM in_batch)
    RETURNING j.id, j.unique_key, j.queue, j.job, j.tags, j.attempts, j.created_at,
              j.reserved_at),
counted AS (
    INSERT INTO {schema}.meta (name, value)
    SELECT 'processed', COUNT(*) FROM done HAVING COUNT(*) > 0
    ON CONFLICT (name) DO UPDATE SET value = meta.value + excluded.value),
history AS (
    -- Every completion leaves its short record, in this statement: no round trip more.
    INSERT INTO {schema}.completed (id, queue, job, tags, attempts, enqueued_at, started_at,
                                    completed_at)
    SELECT id, queue, job, tags, attempts, created_at, reserved_at, (SELECT ms FROM clock)
    FROM done
    ON CONFLICT (id) DO UPDATE SET queue = excluded.queue, job = excluded.job,
        batch_id = NULL, tags = excluded.tags, attempts = excluded.attempts,
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
done_unlocked AS (
    DELETE FROM {schema}.locks l USING done s
    WHERE s.unique_key IS NOT NULL AND l.key = s.unique_key AND l.owner = s.id
      AND l.until = 'done'),
freed AS (DELETE FROM {schema}.slots s USING done x WHERE s.holder = x.id),
picked AS MATERIALIZED (
    SELECT seq FROM {schema}.jobs
    WHERE queue = $3 AND worker_id IS NULL AND available_at <= (SELECT ms FROM clock)
      AND NOT (SELECT found FROM in_batch)
      AND (available_at, seq) > ($5, $6)  -- past this store's claim cursor: cursor.rs
    ORDER BY available_at, seq
    LIMIT $4
    FOR UPDATE SKIP LOCKED),
claimed AS (
    UPDATE {schema}.jobs
    SET worker_id = $2, token = token + 1, reserved_at = (SELECT ms FROM clock),
        attempts = attempts + 1
    WHERE seq IN (SELECT seq FROM picked)
    RETURNING id, queue, envelope, token, attempts, recoveries, deferrals, exceptions, retry_until, last_error, reserved_at, available_at, seq, unique_key),
claim_unlocked AS (
    DELETE FROM {schema}.locks l USING claimed s
    WHERE s.unique_key IS NOT NULL AND l.key = s.unique_key AND l.owner = s.id
      AND l.until = 'processing')
SELECT id, queue, envelope, token, attempts, recoveries, deferrals, exceptions, retry_until, last_error, reserved_at, available_at, seq, NULL::text AS done_id, false AS in_batch FROM claimed
UNION ALL
SELECT NULL::text, NULL::text, NULL::text, NULL::bigint, NULL::bigint, NULL::bigint,
       NULL::bigint, NULL::bigint, NULL::bigint, NULL::text, NULL::bigint,
       NULL::bigint, NULL::bigint, id, false FROM done
UNION ALL
SELECT NULL::text, NULL::text, NULL::text, NULL::bigint, NULL::bigint, NULL::bigint,
       NULL::bigint, NULL::bigint, NULL::bigint, NULL::text, NULL::bigint,
       NULL::bigint, NULL::bigint, NULL::text, true FROM in_batch WHERE found
