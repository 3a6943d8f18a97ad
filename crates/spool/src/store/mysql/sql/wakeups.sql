SELECT COALESCE((SELECT MAX(seq) FROM spool_jobs), 0),
       COALESCE((SELECT CAST(SUM(value) AS SIGNED) FROM spool_meta WHERE name = 'changes'), 0)
