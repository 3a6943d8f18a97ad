UPDATE spool_jobs j
JOIN (SELECT ? AS seq, ? AS delay_ms, ? AS refund, ? AS deferral, ? AS exception, CAST(? AS CHAR) AS error{more}) d
  ON j.seq = d.seq
SET j.worker_id = NULL, j.reserved_at = NULL, j.took_slot = NULL,
    j.available_at = {now} + LEAST(d.delay_ms, {max_offset_ms}),
    j.attempts = j.attempts - d.refund,
    j.deferrals = j.deferrals + d.deferral,
    j.exceptions = j.exceptions + d.exception,
    j.last_error = COALESCE(d.error, j.last_error)
