SELECT MAX(version) FROM spool_migrations
