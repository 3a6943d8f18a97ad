-- The queues with waiting jobs, one index probe each (a loose scan of the claim index).
WITH RECURSIVE q (name) AS (
    SELECT (SELECT MIN(queue) FROM {schema}.jobs WHERE worker_id IS NULL)
    UNION ALL
    SELECT (SELECT MIN(queue) FROM {schema}.jobs WHERE worker_id IS NULL AND queue > q.name)
    FROM q WHERE q.name IS NOT NULL
)
SELECT name FROM q WHERE name IS NOT NULL
