-- The history's tag index for completed jobs, at their records' own completion time (each
-- statement reads its own clock). IGNORE only skips a pair already indexed: tags and ids are
-- checked for length before they are stored.
INSERT IGNORE INTO spool_completed_tags (tag, completed_at, id)
SELECT t.tag, c.completed_at, c.id
FROM spool_completed c
JOIN (SELECT CAST(? AS CHAR) AS tag, CAST(? AS CHAR) AS id{more}) t ON c.id = t.id
