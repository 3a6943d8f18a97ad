SELECT EXISTS (
  SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = $1 AND tablename = 'spool_migrations'
)
