-- Spool's PostgreSQL schema, version 6: small shared values changed by compare-and-set (a
-- language-model provider's admission state, recorded model calls, finished pipeline steps,
-- a shared result cache). `version` grows by one at every write; `expires_at` (ms) is when
-- the value stops being read, and pruning deletes it. Names compare bytewise ("C") so a
-- prefix is a range of the primary key.
CREATE TABLE IF NOT EXISTS {schema}.kv (
    name       TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    value      TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    expires_at BIGINT
);

CREATE INDEX IF NOT EXISTS kv_expires ON {schema}.kv (expires_at) WHERE expires_at IS NOT NULL;
