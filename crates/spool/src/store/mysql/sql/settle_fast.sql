DELETE FROM spool_jobs WHERE worker_id = ? AND id IN ({ids}) AND (id, token) IN ({pairs})
  AND batch_id IS NULL AND unique_key IS NULL AND took_slot IS NULL AND tags IS NULL
