SELECT {columns}
FROM spool_failed WHERE id = ?
