WITH gone AS (
    DELETE FROM {schema}.jobs WHERE id = $1 AND worker_id IS NULL RETURNING id),
unlocked AS (
    DELETE FROM {schema}.locks
    WHERE owner IN (SELECT id FROM gone) AND until <> 'expiry')
SELECT EXISTS (SELECT 1 FROM gone)
