SELECT c.ms,
       CAST(COALESCE(SUM(l.at > c.ms - ?), 0) AS SIGNED),
       MIN(CASE WHEN l.at > c.ms - ? THEN l.at END),
       CAST(COALESCE(SUM(l.at <= c.ms - ?), 0) AS SIGNED)
FROM (SELECT {now} AS ms) c
LEFT JOIN spool_limits l ON l.name = ?
GROUP BY c.ms
