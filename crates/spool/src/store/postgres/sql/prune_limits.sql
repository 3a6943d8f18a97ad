DELETE FROM {schema}.limits
WHERE expires_at <= {schema}.now_ms()
   OR (expires_at IS NULL AND at <= {schema}.now_ms() - 2592000000)
