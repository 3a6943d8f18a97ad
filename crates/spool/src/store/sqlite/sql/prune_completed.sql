-- One slice of a prune of the history: records completed before ?1, at most ?2 of them.
DELETE FROM spool_completed WHERE id IN
    (SELECT id FROM spool_completed WHERE completed_at < ?1 ORDER BY completed_at LIMIT ?2)
