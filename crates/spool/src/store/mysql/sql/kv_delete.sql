DELETE FROM spool_kv WHERE name >= ? AND (? IS NULL OR name < ?)
