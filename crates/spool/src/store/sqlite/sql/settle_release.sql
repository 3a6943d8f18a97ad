UPDATE spool_jobs SET worker_id = NULL, reserved_at = NULL,
       available_at = ?4, attempts = attempts - ?5,
       deferrals = deferrals + ?6, exceptions = exceptions + ?7,
       last_error = COALESCE(?8, last_error)
WHERE id = ?1 AND worker_id = ?2 AND token = ?3
