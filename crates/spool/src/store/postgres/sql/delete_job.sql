WITH gone AS (
    DELETE FROM {schema}.jobs WHERE id = $1 AND worker_id IS NULL RETURNING id, tags),
unlocked AS (
    DELETE FROM {schema}.locks
    WHERE owner IN (SELECT id FROM gone) AND until <> 'expiry'),
untagged AS (
    DELETE FROM {schema}.job_tags t USING gone
    WHERE gone.tags IS NOT NULL AND t.tag = ANY (string_to_array(gone.tags, ','))
      AND t.job_id = gone.id)
SELECT EXISTS (SELECT 1 FROM gone)
