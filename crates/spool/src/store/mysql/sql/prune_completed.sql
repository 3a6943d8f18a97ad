-- One slice of a prune of the history: records older than the age given, at most a slice.
DELETE FROM spool_completed WHERE completed_at < {now} - ? ORDER BY completed_at LIMIT ?
