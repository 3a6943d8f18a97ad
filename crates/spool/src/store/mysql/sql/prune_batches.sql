DELETE FROM spool_batches
WHERE (? IS NOT NULL AND finished_at IS NOT NULL AND finished_at < {now} - ?)
   OR (? IS NOT NULL AND finished_at IS NULL AND created_at < {now} - ?)
   OR (? IS NOT NULL AND cancelled_at IS NOT NULL AND created_at < {now} - ?)
