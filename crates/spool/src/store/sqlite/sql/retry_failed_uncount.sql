-- A retried job (?2) is pending again in its batch (?1), no longer failed; retrying also lifts
-- the cancellation its failure caused.
UPDATE spool_batches SET pending = pending + 1, failed = MAX(failed - 1, 0),
       failed_ids = COALESCE((SELECT json_group_array(value) FROM json_each(failed_ids)
                              WHERE value <> ?2), '[]'),
       cancelled_at = NULL, finished_at = NULL
WHERE id = ?1
