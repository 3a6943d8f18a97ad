UPDATE spool_batches SET total = total + ?2, pending = pending + ?2,
       finished_at = CASE WHEN ?2 > 0 THEN NULL ELSE finished_at END
WHERE id = ?1
