SELECT COUNT(*), CAST(COALESCE(SUM(holder = ?), 0) AS SIGNED)
FROM spool_slots WHERE name = ?
