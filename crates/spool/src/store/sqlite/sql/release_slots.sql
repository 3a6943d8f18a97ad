DELETE FROM spool_slots WHERE holder = ?1
