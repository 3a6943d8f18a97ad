-- Candidates: the completed records older than a position, newest first.
SELECT completed_at, id FROM spool_completed
WHERE (completed_at, id) < (?, ?)
ORDER BY completed_at DESC, id DESC LIMIT ?
