DELETE FROM spool_kv WHERE name >= ?1 AND (?2 IS NULL OR name < ?2)
