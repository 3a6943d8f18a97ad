WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms),
pruned AS (
    DELETE FROM {schema}.limits
    WHERE key = $1 AND at <= (SELECT ms FROM clock) - $2),
live AS MATERIALIZED (
    SELECT COUNT(*) AS n, MIN(at) AS oldest FROM {schema}.limits
    WHERE key = $1 AND at > (SELECT ms FROM clock) - $2),
hit AS (
    INSERT INTO {schema}.limits (key, at, expires_at)
    SELECT $1, c.ms, c.ms + $2 FROM clock c, live WHERE live.n < $3
    RETURNING at)
SELECT live.n, live.oldest, (SELECT at FROM hit), c.ms FROM live, clock c
