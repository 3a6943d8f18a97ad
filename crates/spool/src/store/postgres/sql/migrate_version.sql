SELECT MAX(version) FROM {schema}.spool_migrations
