DELETE FROM spool_slots WHERE holder IN ({holders})
