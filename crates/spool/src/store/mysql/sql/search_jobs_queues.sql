-- The queues with jobs, one index probe each (a loose scan of the claim index).
WITH RECURSIVE q (name) AS (
    SELECT (SELECT MIN(queue) FROM spool_jobs)
    UNION ALL
    SELECT (SELECT MIN(queue) FROM spool_jobs WHERE queue > q.name)
    FROM q WHERE q.name IS NOT NULL
)
SELECT name FROM q WHERE name IS NOT NULL
