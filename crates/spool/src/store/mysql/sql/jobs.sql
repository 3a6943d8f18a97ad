SELECT {columns}, c.ms
FROM spool_jobs, (SELECT {now} AS ms) c WHERE true
