UPDATE spool_kv SET value = ?, version = ?, expires_at = ? WHERE name = ?
