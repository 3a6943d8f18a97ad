UPDATE spool_meta SET value = GREATEST({now}, value + 1)
WHERE name = 'restart_epoch' AND slot = 0
