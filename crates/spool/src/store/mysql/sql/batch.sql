SELECT {columns}
FROM spool_batches WHERE id = ?
