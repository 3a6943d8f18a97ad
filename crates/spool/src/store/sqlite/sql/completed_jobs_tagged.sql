-- Candidates: the completed records with a tag older than a position, newest first.
SELECT completed_at, id FROM spool_completed_tags
WHERE tag = ? AND (completed_at, id) < (?, ?)
ORDER BY completed_at DESC, id DESC LIMIT ?
