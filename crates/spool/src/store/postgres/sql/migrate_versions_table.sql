CREATE TABLE IF NOT EXISTS {schema}.spool_migrations (
    version    BIGINT PRIMARY KEY,
    applied_at BIGINT NOT NULL
)
