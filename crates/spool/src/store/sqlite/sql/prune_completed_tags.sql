-- One slice of a prune of the history's tag index: rows completed before ?1, at most ?2.
DELETE FROM spool_completed_tags WHERE (tag, completed_at, id) IN
    (SELECT tag, completed_at, id FROM spool_completed_tags
     WHERE completed_at < ?1 ORDER BY completed_at LIMIT ?2)
