UPDATE spool_batches SET
    pending = ?, failed = ?, failed_ids = ?,
    cancelled_at = CASE WHEN ? THEN COALESCE(cancelled_at, {now})
                        ELSE cancelled_at END,
    finished_at = CASE WHEN ? THEN COALESCE(finished_at, {now})
                       ELSE finished_at END,
    catch_fired = catch_fired OR ?, finally_fired = finally_fired OR ?,
    then_fired = then_fired OR ?
WHERE id = ?
