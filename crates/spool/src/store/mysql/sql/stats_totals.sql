SELECT (SELECT CAST(COALESCE(SUM(value), 0) AS SIGNED) FROM spool_meta
        WHERE name = 'processed'),
       (SELECT COUNT(*) FROM spool_failed)
