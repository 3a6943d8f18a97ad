UPDATE spool_jobs
SET worker_id = NULL, reserved_at = NULL, took_slot = NULL, available_at = {now},
    attempts = attempts - 1, recoveries = recoveries + 1
WHERE seq IN ({seqs})
