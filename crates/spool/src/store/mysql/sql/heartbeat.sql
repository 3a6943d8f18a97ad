UPDATE spool_workers SET expires_at = {now} + ? WHERE id = ?
