SELECT {columns}, c.ms, reserved_at
FROM spool_jobs, (SELECT {now} AS ms) c WHERE true
