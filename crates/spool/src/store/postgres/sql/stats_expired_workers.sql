SELECT id, {schema}.now_ms() - expires_at FROM {schema}.workers WHERE expires_at <= {schema}.now_ms() ORDER BY expires_at
