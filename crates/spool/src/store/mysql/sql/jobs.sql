SELECT {columns}, c.ms, reserved_at, tags
FROM spool_jobs, (SELECT {now} AS ms) c WHERE true
