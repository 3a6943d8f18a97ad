INSERT INTO {schema}.spool_migrations (version, applied_at)
VALUES ($1, {schema}.now_ms())
