DELETE FROM spool_locks WHERE held_until = ? AND name IN ({keys}) AND (name, owner) IN ({pairs})
