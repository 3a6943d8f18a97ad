SELECT id, {now} - expires_at FROM spool_workers WHERE expires_at <= {now} ORDER BY expires_at
