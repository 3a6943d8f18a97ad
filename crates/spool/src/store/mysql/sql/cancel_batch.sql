UPDATE spool_batches SET cancelled_at = {now} WHERE id = ? AND cancelled_at IS NULL
