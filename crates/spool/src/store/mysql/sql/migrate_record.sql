INSERT IGNORE INTO spool_migrations (version, applied_at) VALUES (?, {now})
