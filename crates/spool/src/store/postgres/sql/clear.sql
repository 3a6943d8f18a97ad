WITH gone AS (
    DELETE FROM {schema}.jobs WHERE queue = $1 AND worker_id IS NULL RETURNING id),
unlocked AS (
    DELETE FROM {schema}.locks
    WHERE owner IN (SELECT id FROM gone) AND until <> 'expiry')
SELECT COUNT(*) FROM gone
