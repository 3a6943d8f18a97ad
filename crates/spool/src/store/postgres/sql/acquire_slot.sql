WITH live AS MATERIALIZED (
    SELECT COUNT(*) AS taken, COUNT(*) FILTER (WHERE holder = $2) AS mine
    FROM {schema}.slots WHERE key = $1),
took AS (
    INSERT INTO {schema}.slots (key, holder, worker_id, expires_at)
    SELECT $1, $2, $3, {schema}.now_ms() + $5 FROM live
    WHERE live.mine = 0 AND live.taken < $4
    RETURNING 1)
SELECT live.mine > 0 OR EXISTS (SELECT 1 FROM took) FROM live
