SELECT name FROM spool_locks WHERE name IN ({keys})
