SELECT {columns} FROM spool_results WHERE id = ?
