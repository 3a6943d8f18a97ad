SELECT (SELECT available_at FROM spool_jobs
        WHERE queue = ? AND worker_id IS NULL
        ORDER BY available_at LIMIT 1) AS first
