SELECT kind, name, value FROM spool_control WHERE kind IN ('paused', 'quiet', 'epoch')
