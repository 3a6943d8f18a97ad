DELETE FROM spool_failed WHERE id IN ({ids})
