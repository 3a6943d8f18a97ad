SELECT kind, name, value FROM spool_control
