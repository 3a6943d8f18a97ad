WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms)
INSERT INTO {schema}.workers (id, host, pid, queues, started_at, expires_at, lease_ms)
SELECT $1, $2, $3, $4, c.ms, c.ms + $5, $5 FROM clock c
ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, lease_ms = excluded.lease_ms
