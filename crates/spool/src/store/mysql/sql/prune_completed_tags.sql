-- One slice of a prune of the history's tag index: rows older than the age given, at most a
-- slice.
DELETE FROM spool_completed_tags WHERE completed_at < {now} - ? ORDER BY completed_at LIMIT ?
