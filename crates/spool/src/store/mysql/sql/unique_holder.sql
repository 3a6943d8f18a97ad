SELECT {columns} FROM spool_locks WHERE name = ?
