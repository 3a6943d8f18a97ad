WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms),
picked AS MATERIALIZED (
    SELECT seq FROM {schema}.jobs
    WHERE queue = $2 AND worker_id IS NULL AND available_at <= (SELECT ms FROM clock)
      AND (available_at, seq) > ($4, $5)  -- past this store's claim cursor: cursor.rs
    ORDER BY available_at, seq
    LIMIT $3
    FOR UPDATE SKIP LOCKED),
claimed AS (
    UPDATE {schema}.jobs
    SET worker_id = $1, token = token + 1, reserved_at = (SELECT ms FROM clock),
        attempts = attempts + 1
    WHERE seq IN (SELECT seq FROM picked)
    RETURNING id, queue, envelope, token, attempts, recoveries, deferrals, exceptions, retry_until, last_error, reserved_at, available_at, seq, unique_key),
unlocked AS (
    DELETE FROM {schema}.locks l USING claimed s
    WHERE s.unique_key IS NOT NULL AND l.key = s.unique_key AND l.owner = s.id
      AND l.until = 'processing')
SELECT id, queue, envelope, token, attempts, recoveries, deferrals, exceptions, retry_until, last_error, reserved_at, available_at, seq FROM claimed
