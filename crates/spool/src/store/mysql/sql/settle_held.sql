SELECT id, seq, token, queue, job, batch_id, unique_key, took_slot IS NOT NULL AS took_slot,
       tags
FROM spool_jobs WHERE worker_id = ? AND id IN ({ids}) FOR UPDATE
