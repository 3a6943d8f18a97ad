DELETE FROM {schema}.failed WHERE failed_at < {schema}.now_ms() - $1
