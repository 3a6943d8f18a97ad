-- Spool's SQLite schema, version 6: small shared values changed by compare-and-set (a
-- language-model provider's admission state, recorded model calls, finished pipeline steps,
-- a shared result cache). `version` grows by one at every write; `expires_at` (ms) is when
-- the value stops being read, and pruning deletes it.
CREATE TABLE IF NOT EXISTS spool_kv (
    name       TEXT    NOT NULL PRIMARY KEY,
    value      TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    expires_at INTEGER
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS spool_kv_expires ON spool_kv (expires_at) WHERE expires_at IS NOT NULL;
