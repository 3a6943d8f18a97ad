-- Applies to batch ?1 the step `rules::batch_step` decided at ?10 for one ended job: the new
-- counters (?2, ?3), the failed job's id (?4, NULL if it completed), whether the batch is now
-- cancelled (?5) and finished (?6), and the callbacks pushed now (?7 catch, ?8 finally, ?9 then).
UPDATE spool_batches SET
    pending = ?2,
    failed = ?3,
    -- At most rules::MAX_FAILED_IDS ids are kept.
    failed_ids = CASE WHEN ?4 IS NULL OR json_array_length(failed_ids) >= 1000 THEN failed_ids
                      ELSE json_insert(failed_ids, '$[#]', ?4) END,
    cancelled_at = CASE WHEN ?5 THEN COALESCE(cancelled_at, ?10) ELSE cancelled_at END,
    finished_at = CASE WHEN ?6 THEN COALESCE(finished_at, ?10) ELSE finished_at END,
    catch_fired = catch_fired OR ?7,
    finally_fired = finally_fired OR ?8,
    then_fired = then_fired OR ?9
WHERE id = ?1
