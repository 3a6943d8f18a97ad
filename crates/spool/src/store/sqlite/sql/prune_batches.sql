DELETE FROM spool_batches
WHERE (?1 IS NOT NULL AND finished_at IS NOT NULL AND finished_at < ?1)
   OR (?2 IS NOT NULL AND finished_at IS NULL AND created_at < ?2)
   OR (?3 IS NOT NULL AND cancelled_at IS NOT NULL AND created_at < ?3)
