-- Spool's MySQL schema, version 6: small shared values changed by compare-and-set (a
-- language-model provider's admission state, recorded model calls, finished pipeline steps,
-- a shared result cache). `version` grows by one at every write; `expires_at` (ms) is when
-- the value stops being read, and pruning deletes it. Names compare bytewise (`utf8mb4_bin`)
-- so a prefix is a range of the primary key.
CREATE TABLE IF NOT EXISTS spool_kv (
    name       VARCHAR(255) NOT NULL,
    value      MEDIUMTEXT   NOT NULL,
    version    BIGINT       NOT NULL,
    expires_at BIGINT       NULL,
    PRIMARY KEY (name),
    KEY spool_kv_expires (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
